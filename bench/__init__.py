"""The benchmark suite of issue 5: `make bench` (or `python -m bench [--quick]`).

It starts the service as the Procfile does, on the PostgreSQL and Redis named by DATABASE_URL
and REDIS_URL (this machine's by default), measures drain, ingest, latency and isolation, and
puts each figure next to a ceiling and a naive Celery baseline measured in the same run.
See BENCHMARKS.md.
"""
