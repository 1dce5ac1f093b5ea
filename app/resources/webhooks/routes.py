"""A wallet's webhooks (tenant: the `apikey` header)."""

from flask import Response
from flask.views import MethodView

from app.auth import TENANT, TENANT_OR_ADMIN, caller
from app.base import Blueprint, ProblemSchema, page
from app.resources.webhooks.schemas import (
    CreatedWebhookSchema,
    RecoveredSchema,
    RecoverSchema,
    RotatedSecretSchema,
    WebhookCreateSchema,
    WebhookPageSchema,
    WebhookSchema,
    WebhookUpdateSchema,
)
from app.state import state
from shared.services import webhooks

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
        with app_state.db.transaction() as session:
            return webhooks.create_webhook(
                session,
                wallet_id,
                body["url"],
                body["customHeaders"],
                body["eventTypes"],
                app_state.settings.max_webhooks_per_wallet,
                settings=app_state.settings,
                ordering=body["ordering"],
                rate_limit=body["rateLimit"],
            )

    @caller(blp, TENANT)
    @blp.response(200, WebhookPageSchema)
    def get(self, wallet_id):
        """List the caller's webhooks"""
        with state().db.session() as session:
            return page("WebhookNotificationPage", webhooks.list_webhooks(session, wallet_id))


@blp.route("/<uuid:webhook_id>")
class WebhookById(MethodView):
    @caller(blp, TENANT)
    @blp.arguments(WebhookUpdateSchema, required=False)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(400, schema=ProblemSchema)
    @blp.alt_response(404, schema=ProblemSchema)
    def patch(self, body, webhook_id, wallet_id):
        """Change a webhook's settings (its rate limit)"""
        with state().db.transaction() as session:
            return webhooks.update_webhook(session, wallet_id, webhook_id, body)

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
        """Rotate the signing secret; the old one keeps signing for a grace period"""
        app_state = state()
        with app_state.db.transaction() as session:
            return webhooks.rotate_secret(
                session, wallet_id, webhook_id, app_state.settings.secret_rotation_grace
            )


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
