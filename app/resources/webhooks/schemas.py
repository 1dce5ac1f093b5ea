import marshmallow as ma

from app.base import Schema, Timestamp, page_schema
from shared.event_types import EVENT_TYPES
from shared.models import Ordering

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
    rateLimit = RateLimit(load_default=None)


class WebhookUpdateSchema(Schema):
    """PATCH: the fields given change, the others stay."""

    rateLimit = RateLimit()


class WebhookSchema(Schema):
    id = ma.fields.UUID(required=True)
    url = ma.fields.String(required=True)
    customHeaders = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.String(),
        attribute="custom_headers",
        required=True,
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
        # Unset optional fields are left out, as the Identus agent's JSON encoder does.
        for name in ("eventTypes", "statusSince", "lastSuccessAt", "statusReason", "rateLimit"):
            if data.get(name) is None:
                data.pop(name, None)
        # Shown when a webhook asked for record ordering; absent (none) keeps the Identus shape.
        if data.get("ordering") in (None, Ordering.NONE):
            data.pop("ordering", None)
        return data


class CreatedWebhookSchema(WebhookSchema):
    secret = ma.fields.String(
        required=True,
        metadata={"description": "The whsec_ signing secret; shown only in this answer."},
    )


class RotatedSecretSchema(Schema):
    id = ma.fields.UUID(required=True)
    secret = ma.fields.String(required=True)
    previousSecretExpiresAt = Timestamp(attribute="previous_secret_expires_at", required=True)


WebhookPageSchema = page_schema("WebhookNotificationPageSchema", WebhookSchema)


class RecoverSchema(Schema):
    since = ma.fields.AwareDateTime(
        required=True,
        default_timezone=None,
        metadata={"description": "Failed deliveries created since this time are sent again."},
    )


class RecoveredSchema(Schema):
    redelivered = ma.fields.Integer(required=True)
