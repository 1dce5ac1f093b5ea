import marshmallow as ma

from app.base import Schema, Timestamp, page_schema
from shared.event_types import EVENT_TYPES


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
    lastSuccessAt = Timestamp(attribute="last_success_at", allow_none=True)

    @ma.post_dump
    def _omit_unset(self, data, **kwargs):
        # Unset optional fields are left out, as the Identus agent's JSON encoder does.
        for name in ("eventTypes", "statusSince", "lastSuccessAt"):
            if data.get(name) is None:
                data.pop(name, None)
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
