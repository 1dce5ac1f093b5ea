"""The core of cloud-agent-webhooks: settings, storage, services and the HTTP sender.

This package imports neither Flask nor Celery, so the API (`app`) and the workers (`worker`)
share it without depending on each other.
"""

__version__ = "0.1.0"
