"""Celery workers: thin tasks that call the services of the `shared` package."""
