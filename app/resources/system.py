"""Health of the service (no authentication)."""

import marshmallow as ma
from flask import Response, jsonify
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from app.base import Blueprint, ProblemSchema, Schema
from app.state import state
from shared import __version__
from shared.metrics import ServiceCollector

blp = Blueprint("system", __name__, url_prefix="/_system", description="Service health and metrics")


class HealthSchema(Schema):
    version = ma.fields.String(required=True)


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=ProblemSchema, description="The database is unreachable")
    def get(self):
        """Health: 200 with the version while the database answers"""
        # An unreachable database raises here and the app's database error handler answers
        # 503 in the problem shape, as it does for every route.
        with state().db.session() as session:
            session.execute(text("SELECT 1"))
        return jsonify(version=__version__)


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(
        responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}}
    )
    def get(self):
        """Metrics in the Prometheus text format"""
        app_state = state()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ServiceCollector(app_state.metrics, app_state.db))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
