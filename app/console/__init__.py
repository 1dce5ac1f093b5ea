"""A console for people: webhooks, deliveries and their attempts, and for the operator the
wallets and the last hour, server-rendered under API_PREFIX/console."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask, prefix: str) -> None:
    from app.console import entry, views  # noqa: F401 - their routes join the blueprint
    from app.console.blueprint import bp

    app.register_blueprint(bp, url_prefix=prefix + bp.url_prefix)
