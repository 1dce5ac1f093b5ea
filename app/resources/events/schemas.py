import marshmallow as ma

from app.base import PageArgsSchema, Schema, Timestamp, page_schema
from shared.event_types import EVENT_TYPES
from shared.models import DeliveryStatus

STATUSES = [status.value for status in DeliveryStatus]


class EventCreateSchema(Schema):
    type = ma.fields.String(required=True, metadata={"enum": list(EVENT_TYPES)})
    data = ma.fields.Dict(required=True)
    walletId = ma.fields.UUID(metadata={"description": "Admin only: the wallet of the event."})


class EventSchema(Schema):
    """The envelope every target receives, byte for byte."""

    type = ma.fields.String(required=True)
    id = ma.fields.UUID(required=True)
    ts = ma.fields.String(required=True, metadata={"example": "2023-07-06T12:01:19.769427Z"})
    data = ma.fields.Dict(required=True)
    walletId = ma.fields.UUID(required=True)


class DeliveryArgsSchema(PageArgsSchema):
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    webhookId = ma.fields.UUID()
    eventId = ma.fields.UUID()


class AttemptSchema(Schema):
    round = ma.fields.Integer(required=True)
    number = ma.fields.Integer(required=True)
    startedAt = Timestamp(attribute="started_at", required=True)
    durationMs = ma.fields.Float(attribute="duration_ms", required=True)
    statusCode = ma.fields.Integer(attribute="status_code", allow_none=True)
    error = ma.fields.String(allow_none=True)


class DeliverySchema(Schema):
    id = ma.fields.UUID(required=True)
    eventId = ma.fields.UUID(attribute="event_id", required=True)
    walletId = ma.fields.UUID(attribute="wallet_id", required=True)
    webhookId = ma.fields.UUID(attribute="webhook_id", allow_none=True)
    target = ma.fields.String(required=True, metadata={"enum": ["wallet", "global"]})
    url = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": STATUSES})
    round = ma.fields.Integer(required=True)
    attempts = ma.fields.Integer(required=True)
    nextAttemptAt = Timestamp(attribute="next_attempt_at")
    lastStatusCode = ma.fields.Integer(attribute="last_status_code", allow_none=True)
    lastError = ma.fields.String(attribute="last_error", allow_none=True)
    createdAt = Timestamp(attribute="created_at", required=True)
    updatedAt = Timestamp(attribute="updated_at", required=True)


class DeliveryDetailSchema(DeliverySchema):
    attemptLog = ma.fields.List(ma.fields.Nested(AttemptSchema), attribute="attempt_log")


DeliveryPageSchema = page_schema("DeliveryPageSchema", DeliverySchema)
