"""Publishing events, and the delivery log (tenant: its wallet; admin: everything)."""

from flask import Response
from flask.views import MethodView

from app.auth import TENANT_OR_ADMIN, caller
from app.base import Blueprint, ProblemSchema, page
from app.resources.events.schemas import (
    DeliveryArgsSchema,
    DeliveryDetailSchema,
    DeliveryPageSchema,
    DeliverySchema,
    EventCreateSchema,
    EventSchema,
)
from app.state import state
from shared.errors import InvalidInput
from shared.publishing import Outgoing, dispatch_or_leave_for_sweep, publish_event
from shared.services import delivery_log

blp = Blueprint("events", __name__, url_prefix="/events", description="Events and deliveries")


@blp.route("")
class Events(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.arguments(EventCreateSchema)
    @blp.response(202, EventSchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(503, schema=ProblemSchema, description="The database is unreachable")
    def post(self, body, wallet_id):
        """Publish a state change; answered once the event and its deliveries are stored"""
        if wallet_id is None:
            wallet_id = body.get("walletId")
            if wallet_id is None:
                raise InvalidInput("walletId: required when publishing as the operator")
        app_state = state()
        published = publish_event(
            app_state.db,
            app_state.settings,
            wallet_id,
            body["type"],
            body["data"],
            dispatch=app_state.dispatch,
            metrics=app_state.metrics,
        )
        # The stored bytes themselves: what the client sees is exactly what targets receive.
        return Response(published.body, status=202, mimetype="application/json")


@blp.route("/deliveries")
class Deliveries(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.arguments(DeliveryArgsSchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args, wallet_id):
        """List deliveries, newest first"""
        with state().db.session() as session:
            rows, total = delivery_log.list_deliveries(
                session,
                wallet_id,
                args["offset"],
                args["limit"],
                args.get("status"),
                args.get("webhookId"),
                args.get("eventId"),
            )
        return page("DeliveryPage", rows, args["offset"], args["limit"], total)


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
    @blp.response(202, DeliverySchema)
    @blp.alt_response(404, schema=ProblemSchema)
    @blp.alt_response(409, schema=ProblemSchema, description="Not finished, or webhook deleted")
    def post(self, delivery_id, wallet_id):
        """Deliver again: a fresh round of attempts with the same event id and bytes"""
        app_state = state()
        with app_state.db.transaction() as session:
            delivery = delivery_log.redeliver(session, wallet_id, delivery_id)
        if app_state.dispatch is not None:
            outgoing = Outgoing.from_row((delivery.id, delivery.url, delivery.webhook_id))
            dispatch_or_leave_for_sweep(app_state.db, app_state.dispatch, [outgoing])
        return delivery
