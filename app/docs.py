"""Swagger UI's own files, served from the swagger-ui-bundle package installed with the service,
so /docs renders on a machine without internet access."""

from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets/"


def assets_url(prefix: str) -> str:
    return prefix + ASSETS


def init_app(app: Flask, prefix: str) -> None:
    blp = Blueprint("swagger_ui_assets", __name__)

    @blp.route(assets_url(prefix) + "<path:filename>")
    def asset(filename):
        return send_from_directory(swagger_ui_path, filename, max_age=86400)

    app.register_blueprint(blp)
