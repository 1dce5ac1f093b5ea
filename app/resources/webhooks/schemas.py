import marshmallow as ma

from app.base import Schema, Timestamp, page_schema
from app.resources.webhooks.receiver_schemas import (
    AUTH_DESCRIPTION,
    SIGNATURE_DESCRIPTION,
    TLS_DESCRIPTION,
)
from shared.event_types import EVENT_TYPES, TEST_EVENT_TYPE
from shared.models import Ordering
from shared.receiver_auth import shown_auth
from shared.services.webhook_fields import HIDDEN_VALUE
from shared.services.webhooks import SIGNATURE_SCHEMES
from shared.tls_material import shown_tls

ORDERINGS = [ordering.value for ordering in Ordering]
RATE_LIMIT_DESCRIPTION = (
    "At most this many deliveries per second to this webhook, across every worker; deliveries "
    "over it wait without spending an attempt. null: no limit."
)


def RateLimit(**options) -> ma.fields.Integer:  # noqa: N802 - a field, named like one
    return ma.fields.Integer(
        allow_none=True,
        validate=ma.validate.Range(1, 10_000),
        metadata={"description": RATE_LIMIT_DESCRIPTION, "example": 20},
        **options,
    )


ORDERING_DESCRIPTION = (
    "record: the deliveries of events about one record (connectionId, recordId, presentationId, "
    "did) start only after the previous one of that record ended (delivered, or failed after "
    "its attempts), in publish order; records stay parallel. none: every delivery at once."
)


class WebhookCreateSchema(Schema):
    url = ma.fields.String(
        required=True,
        metadata={"example": "http://localhost:9095", "format": "uri", "maxLength": 2048},
    )
    customHeaders = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), allow_none=True, load_default=None
    )
    eventTypes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(list(EVENT_TYPES))),
        allow_none=True,
        load_default=None,
        metadata={"description": "Only these event types are sent; absent means all."},
    )
    ordering = ma.fields.String(
        load_default="none",
        validate=ma.validate.OneOf(ORDERINGS),
        metadata={"description": ORDERING_DESCRIPTION},
    )
    # Checked in the core (shared.receiver_auth, shared.tls_material); the OpenAPI document
    # shows their shapes (app.openapi).
    auth = ma.fields.Dict(
        allow_none=True, load_default=None, metadata={"description": AUTH_DESCRIPTION}
    )
    tls = ma.fields.Dict(
        allow_none=True, load_default=None, metadata={"description": TLS_DESCRIPTION}
    )
    signatureScheme = ma.fields.String(
        load_default="v1",
        validate=ma.validate.OneOf(SIGNATURE_SCHEMES),
        metadata={"description": SIGNATURE_DESCRIPTION},
    )
    rateLimit = RateLimit(load_default=None)


class WebhookChangeSchema(Schema):
    """PATCH: only the fields given change."""

    url = ma.fields.String(metadata={"format": "uri", "maxLength": 2048})
    customHeaders = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        allow_none=True,
        metadata={
            "description": "Replaces the custom headers; a value sent back as "
            f"{HIDDEN_VALUE} keeps the stored one."
        },
    )
    eventTypes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(list(EVENT_TYPES))),
        allow_none=True,
        metadata={"description": "Only these event types are sent; null means all."},
    )
    auth = ma.fields.Dict(
        allow_none=True,
        metadata={"description": AUTH_DESCRIPTION + " null removes it."},
    )
    tls = ma.fields.Dict(
        allow_none=True,
        metadata={
            "description": TLS_DESCRIPTION + " null removes it; without clientKey, the "
            "stored key stays."
        },
    )
    rateLimit = RateLimit()


def _without_unset(data: dict, names) -> dict:
    for name in names:
        if data.get(name) is None:
            data.pop(name, None)
    return data


def _hidden_values(webhook) -> dict:
    return {name: HIDDEN_VALUE for name in webhook.custom_headers or {}}


class WebhookSchema(Schema):
    id = ma.fields.UUID(required=True)
    url = ma.fields.String(required=True)
    customHeaders = ma.fields.Function(
        _hidden_values,
        required=True,
        metadata={
            "type": "object",
            "additionalProperties": {"type": "string", "enum": [HIDDEN_VALUE]},
            "description": f"The custom header names; every value shows as {HIDDEN_VALUE}.",
        },
    )
    # Their shapes are in the OpenAPI document (app.openapi): never a password, secret or key.
    auth = ma.fields.Function(lambda webhook: shown_auth(webhook.auth))
    tls = ma.fields.Function(lambda webhook: shown_tls(webhook.tls))
    signatureScheme = ma.fields.Function(
        lambda webhook: "v1a" if webhook.public_key else None,
        metadata={
            "type": "string",
            "enum": ["v1a"],
            "description": "Present when v1a; absent means v1 (HMAC), the default.",
        },
    )
    publicKey = ma.fields.String(
        attribute="public_key",
        metadata={"description": "v1a: the whpk_ Ed25519 key that verifies the signatures."},
    )
    eventTypes = ma.fields.List(ma.fields.String(), attribute="event_types")
    createdAt = Timestamp(attribute="created_at", required=True)
    status = ma.fields.String(
        metadata={
            "enum": ["active", "failing", "disabled"],
            "description": "failing: deliveries wait while probes test the receiver; "
            "disabled: nothing is sent until the webhook is enabled.",
        }
    )
    statusSince = Timestamp(attribute="status_since", allow_none=True)
    ordering = ma.fields.String(
        metadata={"enum": ORDERINGS, "description": "Present when not none (the default)."}
    )
    lastSuccessAt = Timestamp(attribute="last_success_at", allow_none=True)
    statusReason = ma.fields.String(
        attribute="status_reason",
        metadata={"description": "Why it was disabled (e.g. the receiver answered 410 Gone)."},
    )
    rateLimit = ma.fields.Integer(
        attribute="rate_limit", metadata={"description": RATE_LIMIT_DESCRIPTION}
    )

    @ma.post_dump
    def _omit_unset(self, data, **kwargs):
        # Unset optional fields are left out, as the Identus agent's JSON encoder does; the
        # signature scheme and public key are shown for v1a webhooks only (v1 is the default).
        _without_unset(
            data,
            ("eventTypes", "statusSince", "lastSuccessAt", "auth", "tls")
            + ("signatureScheme", "publicKey", "statusReason", "rateLimit"),
        )
        # Shown when a webhook asked for record ordering; absent (none) keeps the Identus shape.
        if data.get("ordering") in (None, Ordering.NONE):
            data.pop("ordering", None)
        return data


class CreatedWebhookSchema(WebhookSchema):
    secret = ma.fields.String(
        attribute="new_secret",
        metadata={
            "description": "v1: the whsec_ signing secret; shown only in this answer. "
            "(v1a: none; receivers verify with publicKey.)"
        },
    )

    @ma.post_dump
    def _omit_no_secret(self, data, **kwargs):
        return _without_unset(data, ("secret",))


class RotatedSecretSchema(Schema):
    id = ma.fields.UUID(required=True)
    secret = ma.fields.String(
        attribute="new_secret", metadata={"description": "v1: the new whsec_ secret."}
    )
    publicKey = ma.fields.String(
        attribute="public_key", metadata={"description": "v1a: the new whpk_ public key."}
    )
    previousSecretExpiresAt = Timestamp(attribute="previous_secret_expires_at", required=True)

    @ma.post_dump
    def _omit_unset(self, data, **kwargs):
        return _without_unset(data, ("secret", "publicKey"))


WebhookPageSchema = page_schema("WebhookNotificationPageSchema", WebhookSchema)


class RecoverSchema(Schema):
    since = ma.fields.AwareDateTime(
        required=True,
        default_timezone=None,
        metadata={"description": "Failed deliveries created since this time are sent again."},
    )


class RecoveredSchema(Schema):
    redelivered = ma.fields.Integer(required=True)


class TestEventSchema(Schema):
    type = ma.fields.String(
        load_default=TEST_EVENT_TYPE,
        validate=ma.validate.OneOf([*EVENT_TYPES, TEST_EVENT_TYPE]),
        metadata={
            "description": f"An event type of GET /events/types; by default {TEST_EVENT_TYPE}, "
            "which only this route sends."
        },
    )
