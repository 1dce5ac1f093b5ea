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

    @ma.post_dump
    def _omit_unset(self, data, **kwargs):
        # Unset optional fields are left out, as the Identus agent's JSON encoder does.
        if data.get("eventTypes") is None:
            data.pop("eventTypes", None)
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
