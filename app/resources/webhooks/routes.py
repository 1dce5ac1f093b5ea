"""A wallet's webhooks (tenant: the `apikey` header)."""

from flask import Response
from flask.views import MethodView

from app.auth import TENANT, TENANT_OR_ADMIN, caller
from app.base import Blueprint, ProblemSchema, page
from app.resources.events.schemas import DeliverySchema
from app.resources.webhooks.schemas import (
    CreatedWebhookSchema,
    RecoveredSchema,
    RecoverSchema,
    RotatedSecretSchema,
    TestEventSchema,
    WebhookChangeSchema,
    WebhookCreateSchema,
    WebhookPageSchema,
    WebhookSchema,
)
from app.state import state
from shared.services import webhook_tests, webhooks
from shared.store.rows import Outgoing

blp = Blueprint(
    "webhooks", __name__, url_prefix="/events/webhooks", description="Wallet webhooks (tenant)"
)


@blp.route("")
class Webhooks(MethodView):
    @caller(blp, TENANT)
    @blp.arguments(WebhookCreateSchema)
    # Health is shown in the list; the registration answer keeps the Identus fields.
    @blp.response(200, CreatedWebhookSchema(exclude=("status", "statusSince", "lastSuccessAt")))
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(422, schema=ProblemSchema, description="Too many webhooks for the wallet")
    def post(self, body, wallet_id):
        """Register a webhook for the caller's wallet"""
        app_state = state()
        request = webhooks.WebhookRequest(
            url=body["url"],
            custom_headers=body["customHeaders"],
            event_types=body["eventTypes"],
            ordering=body["ordering"],
            auth=body["auth"],
            tls=body["tls"],
            signature_scheme=body["signatureScheme"],
            rate_limit=body["rateLimit"],
        )
        with app_state.db.transaction() as session:
            return webhooks.create_webhook(session, app_state.settings, wallet_id, request)

    @caller(blp, TENANT)
    @blp.response(200, WebhookPageSchema)
    def get(self, wallet_id):
        """List the caller's webhooks"""
        with state().db.session() as session:
            return page("WebhookNotificationPage", webhooks.list_webhooks(session, wallet_id))


@blp.route("/<uuid:webhook_id>")
class WebhookById(MethodView):
    @caller(blp, TENANT)
    @blp.arguments(WebhookChangeSchema, required=False)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def patch(self, body, webhook_id, wallet_id):
        """Change a webhook's url, custom headers, event types, authentication, TLS or rate
        limit"""
        app_state = state()
        with app_state.db.transaction() as session:
            return webhooks.change_webhook(session, app_state.settings, wallet_id, webhook_id, body)

    @caller(blp, TENANT)
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema)
    def delete(self, webhook_id, wallet_id):
        """Delete a webhook; its unfinished deliveries are cancelled"""
        state().delete_webhook(wallet_id, webhook_id)
        return Response(status=200)


@blp.route("/<uuid:webhook_id>/rotate-secret")
class WebhookSecret(MethodView):
    @caller(blp, TENANT)
    @blp.response(200, RotatedSecretSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def post(self, webhook_id, wallet_id):
        """Rotate the signing secret (v1a: the key pair); the old one keeps signing for a while"""
        app_state = state()
        with app_state.db.transaction() as session:
            return webhooks.rotate_secret(session, app_state.settings, wallet_id, webhook_id)


@blp.route("/<uuid:webhook_id>/enable")
class WebhookEnable(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def post(self, webhook_id, wallet_id):
        """Enable a disabled or failing webhook: attempts go out again, waiting ones first"""
        with state().db.transaction() as session:
            return webhooks.enable_webhook(session, wallet_id, webhook_id)


@blp.route("/<uuid:webhook_id>/recover")
class WebhookRecover(MethodView):
    @caller(blp, TENANT_OR_ADMIN)
    @blp.arguments(RecoverSchema)
    @blp.response(202, RecoveredSchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def post(self, body, webhook_id, wallet_id):
        """Redeliver the webhook's failed deliveries since a time: a new round each"""
        app_state = state()
        outgoing = app_state.db.in_batches(
            lambda session: webhooks.recover_webhook(session, wallet_id, webhook_id, body["since"]),
            then=app_state.send,
        )
        return {"redelivered": len(outgoing)}


@blp.route("/<uuid:webhook_id>/test")
class WebhookTest(MethodView):
    @caller(blp, TENANT)
    @blp.arguments(TestEventSchema, required=False)
    @blp.response(202, DeliverySchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def post(self, body, webhook_id, wallet_id):
        """Send this webhook alone an example event: signed, logged and redeliverable"""
        app_state = state()
        with app_state.db.transaction() as session:
            delivery = webhook_tests.send_test_event(session, wallet_id, webhook_id, body["type"])
        app_state.send([Outgoing.of(delivery)])
        return delivery
