"""Publishing events, and the delivery log (tenant: its wallet; admin: everything)."""

import re

from flask import Response, request
from flask.views import MethodView

from app.auth import TENANT_OR_ADMIN, caller
from app.base import Blueprint, ProblemSchema, page
from app.resources.events.schemas import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    TRACEPARENT_HEADER,
    DeliveryArgsSchema,
    DeliveryDetailSchema,
    DeliveryPageSchema,
    EventBatchResultSchema,
    EventBatchSchema,
    EventCreateSchema,
    EventSchema,
    RedeliverySchema,
)
from app.state import state
from shared.errors import InvalidInput
from shared.publishing import OPERATOR_SCOPE, EventInput, publish_event, publish_events
from shared.services import delivery_log
from shared.store.rows import Outgoing
from shared.tracing import TRACEPARENT

blp = Blueprint("events", __name__, url_prefix="/events", description="Events and deliveries")


_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.match(key):
        raise InvalidInput("Idempotency-Key: 1 to 255 visible ASCII characters")
    return key


def _event_wallet(wallet_id, body: dict, where: str = ""):
    """A tenant publishes for its wallet; the operator names the wallet of each event."""
    if wallet_id is not None:
        return wallet_id
    if body.get("walletId") is None:
        raise InvalidInput(f"{where}walletId: required when publishing as the operator")
    return body["walletId"]


def _publish(wallet_id, store) -> Response:
    """Store the events (`store(conn, traceparent)`), send their tasks, answer 202 with the
    stored bytes; within a publish span when spans are exported. The producer's `traceparent`
    (or the span's, or none) is stored with the events for every attempt to carry on."""
    app_state = state()
    with app_state.tracing.publish(request.headers.get(TRACEPARENT), wallet_id) as trace:
        with app_state.db.statements() as conn:
            published = store(conn, trace.traceparent)
        trace.published(published.ids, published.types)
        app_state.published(published)
    # The stored bytes themselves: what the client sees is exactly what targets receive.
    return Response(published.body, status=202, mimetype="application/json")


@blp.route("")
class Events(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    # Instances: given a class, the parser would make a new schema for every request.
    @blp.arguments(EventCreateSchema())
    @blp.response(202, EventSchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="Idempotency-Key used for another")
    @blp.alt_response(503, schema=ProblemSchema, description="The database is unreachable")
    @blp.doc(parameters=[IDEMPOTENCY_HEADER, TRACEPARENT_HEADER])
    def post(self, body, wallet_id):
        """Publish a state change; answered once the event and its deliveries are stored"""
        key = _idempotency_key()
        settings = state().settings
        return _publish(
            wallet_id,
            lambda conn, traceparent: publish_event(
                conn,
                settings,
                _event_wallet(wallet_id, body),
                body["type"],
                body["data"],
                idempotency_key=key,
                key_scope=wallet_id or OPERATOR_SCOPE,
                traceparent=traceparent,
            ),
        )


@blp.route("/batch")
class EventBatch(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.arguments(EventBatchSchema())
    @blp.response(202, EventBatchResultSchema)
    @blp.alt_response(400, schema=ProblemSchema, description="An invalid event; none is stored")
    @blp.alt_response(409, schema=ProblemSchema, description="Idempotency-Key used for another")
    @blp.alt_response(503, schema=ProblemSchema, description="The database is unreachable")
    @blp.doc(parameters=[IDEMPOTENCY_HEADER, TRACEPARENT_HEADER])
    def post(self, body, wallet_id):
        """Publish 1 to 100 state changes together: all are stored, or none"""
        key = _idempotency_key()
        events = [
            EventInput(_event_wallet(wallet_id, item, f"events[{i}]."), item["type"], item["data"])
            for i, item in enumerate(body["events"])
        ]
        settings = state().settings
        return _publish(
            wallet_id,
            lambda conn, traceparent: publish_events(
                conn,
                settings,
                events,
                idempotency_key=key,
                key_scope=wallet_id or OPERATOR_SCOPE,
                traceparent=traceparent,
            ),
        )


@blp.route("/deliveries")
class Deliveries(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.arguments(DeliveryArgsSchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args, wallet_id):
        """List deliveries, newest first"""
        filters = delivery_log.DeliveryFilter(
            args.get("status"), args.get("webhookId"), args.get("eventId")
        )
        offset, limit = args["offset"], args["limit"]
        with state().db.session() as session:
            rows, more = delivery_log.list_deliveries(session, wallet_id, offset, limit, filters)
        # No count: one row past the page says whether another follows.
        return page("DeliveryPage", rows, offset, limit, offset + len(rows) + more)


@blp.route("/deliveries/<uuid:delivery_id>")
class DeliveryById(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.response(200, DeliveryDetailSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def get(self, delivery_id, wallet_id):
        """Show a delivery with its attempts"""
        with state().db.session() as session:
            delivery = delivery_log.get_delivery(session, wallet_id, delivery_id)
            delivery.attempt_log = delivery_log.attempts_of(session, delivery_id)
        return delivery


@blp.route("/deliveries/<uuid:delivery_id>/redeliver")
class Redelivery(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.response(202, RedeliverySchema)
    @blp.alt_response(404, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="Not finished, or webhook deleted")
    def post(self, delivery_id, wallet_id):
        """Deliver again: a fresh round of attempts with the same event id and bytes"""
        app_state = state()
        with app_state.db.transaction() as session:
            delivery = delivery_log.redeliver(session, wallet_id, delivery_id)
        app_state.send([Outgoing.of(delivery)])
        return delivery
