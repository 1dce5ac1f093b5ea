"""Health of the service (no authentication)."""

import marshmallow as ma
from flask import jsonify
from flask.views import MethodView
from sqlalchemy import text

from app.base import Blueprint, ProblemSchema, Schema
from app.errors import problem
from app.state import state
from shared import __version__

blp = Blueprint("system", __name__, url_prefix="/_system", description="Service health")


class HealthSchema(Schema):
    version = ma.fields.String(required=True)


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=ProblemSchema, description="The database is unreachable")
    def get(self):
        """Health: 200 with the version while the database answers"""
        try:
            with state().db.session() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return problem(
                503, "ServiceUnavailable", "Service Unavailable", "The database is unreachable."
            )
        return jsonify(version=__version__)
