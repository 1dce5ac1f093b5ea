"""`cloud-agent-webhooks web`: the API under granian, a Rust HTTP server with a WSGI interface,
in place of the Procfile's gunicorn where an operator prefers it.

Measured beside gunicorn gthread on the same app (the bench's `web_servers` scenario), neither
was ahead from run to run (BENCHMARKS.md, "Web servers, four runs"). Before the
workers start: the settings are checked (a bad variable stops the start with one line), and the
schema and default wallet are made ready, as gunicorn.conf.py does.

WEB_CONCURRENCY worker processes (2), each running the app in WEB_THREADS threads (8).
"""

from __future__ import annotations

import gc

# Method, path (without its query: tokens travel there), status and time only: headers
# (apikey, tokens) and bodies never reach the log.
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s" %(status)d %(dt_ms).0fms'
# A worker's requests in progress get this long to end after SIGTERM.
GRACEFUL_SECONDS = 20


def create_app():
    """What each worker process serves (granian calls it once per process)."""
    from app import create_app as create

    app = create()
    # Flask, SQLAlchemy, marshmallow and the OpenAPI document leave ~100,000 long-lived
    # objects: kept out of the collector's full passes, which would otherwise walk all of them
    # (tens of ms) in the middle of whatever request triggered one.
    gc.freeze()
    return app


def serve() -> int:
    from granian import Granian
    from granian.constants import Interfaces

    from shared.logs import configure_logging
    from shared.settings import web_settings_or_exit
    from tools.migrate import prepare_database

    settings = web_settings_or_exit()
    configure_logging(settings.log_level)
    prepare_database(settings)
    server = Granian(
        "tools.web:create_app",
        factory=True,
        interface=Interfaces.WSGI,
        address="0.0.0.0",
        port=settings.port,
        workers=settings.web_concurrency,
        blocking_threads=settings.web_threads,
        runtime_threads=1,
        log_access=True,
        log_access_format=ACCESS_LOG_FORMAT,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    server.serve()
    return 0
