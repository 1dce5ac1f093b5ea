"""The Flask API.

gunicorn -c gunicorn.conf.py "app:create_app()" (the Procfile's `web`), or under granian:
cloud-agent-webhooks web (tools/web.py).
"""

from __future__ import annotations

from flask import Flask, abort, request
from flask_smorest import Api

from app import console, docs, errors, turns
from app.auth import SECURITY_SCHEMES
from app.base import ProblemSchema
from app.openapi import describe_input_rules
from app.proxy import ForwardedProto
from app.state import AppState
from shared import __version__
from shared.db import Database
from shared.logs import configure_logging
from shared.metrics import MetricsRecorder
from shared.publishing import Dispatch
from shared.settings import Settings, check_web, web_settings_or_exit
from shared.tracing import tracing_for

MAX_BODY_BYTES = 1024 * 1024


class WebhooksApi(Api):
    # Every documented error response, the default one included, is the contract's problem.
    ERROR_SCHEMA = ProblemSchema


def create_app(settings: Settings | None = None, dispatch: Dispatch | None = None) -> Flask:
    """The API for `settings` (the environment's by default).

    `dispatch` sends delivery tasks after each commit; by default the Celery dispatcher.
    """
    settings = check_web(settings) if settings else web_settings_or_exit()
    configure_logging(settings.log_level)
    if dispatch is None:
        from worker.dispatch import send_deliveries  # the API imports worker only to send

        dispatch = send_deliveries

    app = Flask(__name__)
    prefix = settings.api_prefix
    app.config.update(
        API_PREFIX=prefix,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="cloud-agent-webhooks",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=prefix or "/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=docs.assets_url(prefix),
        API_SPEC_OPTIONS={
            "info": {
                "description": "Webhook notifications of a multi-tenant identity cloud agent, "
                "compatible with the Hyperledger Identus Cloud Agent."
            },
        },
    )
    app.extensions["cloud_agent_webhooks"] = AppState(
        settings=settings,
        db=Database.for_process(settings),
        dispatch=dispatch,
        metrics=MetricsRecorder(settings.redis_url),
        tracing=tracing_for(settings, "web"),
    )

    api = WebhooksApi(app)
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    _register_resources(api, prefix)
    docs.init_app(app, prefix)
    console.init_app(app, prefix)
    errors.init_app(app)
    app.before_request(_refuse_large_bodies)
    turns.init_app(app, settings.publish_concurrency_per_tenant)
    app.wsgi_app = ForwardedProto(app.wsgi_app, settings.forwarded_allow_ips)
    return app


def _register_resources(api: Api, prefix: str) -> None:
    from app.resources import system
    from app.resources.console_links import routes as console_links
    from app.resources.event_types import routes as event_types
    from app.resources.events import routes as events
    from app.resources.iam import routes as iam
    from app.resources.wallets import routes as wallets
    from app.resources.webhooks import routes as webhooks

    # Webhooks and types first: /events/webhooks must not be read as an event id.
    for module in (system, webhooks, event_types, events, wallets, iam, console_links):
        api.register_blueprint(module.blp, url_prefix=prefix + module.blp.url_prefix)
    describe_input_rules(api.spec)


def _refuse_large_bodies():
    # Before authentication, so an oversized body is refused without being read.
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        abort(413)
