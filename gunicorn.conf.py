"""gunicorn settings for the `web` process: $PORT, $WEB_CONCURRENCY, migrations before serving.

`cloud-agent-webhooks web` (tools/web.py) serves the same app under granian instead."""

import gc

from shared.logs import configure_logging
from shared.settings import web_settings_or_exit
from tools.migrate import prepare_database

# A bad variable, or no SECRET_KEY, stops the start with one clear line.
_settings = web_settings_or_exit()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "gthread"
threads = _settings.web_threads
timeout = 30
graceful_timeout = 20
# X-Forwarded-Proto is the app's to believe or not (app/proxy.py, FORWARDED_ALLOW_IPS), as it
# is under granian: gunicorn itself believes no address.
forwarded_allow_ips = ""
accesslog = "-"
# Method, path and status only: headers (apikey, tokens) and bodies never reach the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    """Once, in the master, before workers fork: schema and default wallet are ready."""
    configure_logging(_settings.log_level)
    prepare_database(_settings)


def post_worker_init(worker):
    """The application is loaded: keep its objects out of the garbage collector's full passes.

    Flask, SQLAlchemy, marshmallow and the OpenAPI document leave ~100,000 long-lived objects;
    a full collection walks all of them (55 ms here, more on a busy core) in the middle of
    whatever request triggered it.
    """
    gc.freeze()
