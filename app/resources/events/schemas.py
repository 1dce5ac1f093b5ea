import marshmallow as ma

from app.base import PageArgsSchema, Schema, Timestamp, page_schema
from shared.event_types import EVENT_TYPES, EventType
from shared.models import DeliveryStatus, Target, shown_webhook_id
from shared.publishing import MAX_BATCH

STATUSES = [status.value for status in DeliveryStatus]


def _data_schema(event_type: EventType) -> type[ma.Schema]:
    """What `data` of one event type must carry; other fields pass through unchanged."""
    id_metadata = {"format": "uuid"} if event_type.id_is_uuid else {}
    if event_type.name == "DIDStatusUpdated":
        id_metadata = {"pattern": "^did:", "example": "did:prism:abc"}
    fields = {
        event_type.id_field: ma.fields.String(
            required=True, validate=ma.validate.Length(min=1), metadata=id_metadata
        ),
        event_type.state_field: ma.fields.String(
            required=True, validate=ma.validate.OneOf(event_type.states)
        ),
    }
    if event_type.roles:
        fields["role"] = ma.fields.String(
            required=True, validate=ma.validate.OneOf(event_type.roles)
        )
    meta = type("Meta", (), {"unknown": ma.INCLUDE})
    return type(f"{event_type.name}DataSchema", (ma.Schema,), {**fields, "Meta": meta})


DATA_SCHEMAS = {name: _data_schema(event_type) for name, event_type in EVENT_TYPES.items()}


class WebhookTestDataSchema(ma.Schema):
    """`data` of a WebhookTest event (POST /events/webhooks/{id}/test)."""

    webhookId = ma.fields.String(required=True, metadata={"format": "uuid"})
    message = ma.fields.String(required=True)


# One instance each, made once: a schema keeps no state between loads, and making one deep-copies
# its fields on every request.
_DATA_VALIDATORS = {name: schema() for name, schema in DATA_SCHEMAS.items()}


class EventCreateSchema(Schema):
    """POST /events; the OpenAPI document shows it as one schema per type (`document_events`)."""

    type = ma.fields.String(required=True, validate=ma.validate.OneOf(list(EVENT_TYPES)))
    data = ma.fields.Dict(required=True)
    walletId = ma.fields.UUID(metadata={"description": "Admin only: the wallet of the event."})

    @ma.validates_schema
    def _data_fits_its_type(self, body, **kwargs):
        errors = _DATA_VALIDATORS[body["type"]].validate(body["data"])
        if errors:
            raise ma.ValidationError(errors, "data")


class EventBatchSchema(Schema):
    """POST /events/batch: the events are stored together, or none of them."""

    events = ma.fields.List(
        ma.fields.Nested(EventCreateSchema),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_BATCH),
        metadata={"description": f"1 to {MAX_BATCH} events, stored and answered in this order."},
    )


class EventBatchResultSchema(Schema):
    events = ma.fields.List(ma.fields.Nested(lambda: EventSchema()), required=True)


# Visible ASCII (RFC 9110 VCHAR), 1 to 255 characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": (
        "Sent again with the same request (same events) within IDEMPOTENCY_TTL (24 h), the "
        "answer is the first request's, and nothing new is stored or delivered; with another "
        "request, 409. Scoped to the caller's wallet."
    ),
}
TRACEPARENT_HEADER = {
    "in": "header",
    "name": "traceparent",
    "required": False,
    "schema": {
        "type": "string",
        "example": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    },
    "description": (
        "W3C trace context: every attempt to deliver these events sends the receiver a "
        "`traceparent` of this trace. Absent or invalid: the service starts a trace."
    ),
}


def _typed_event_schema(name: str) -> type[ma.Schema]:
    return type(
        f"{name}EventSchema",
        (Schema,),
        {
            "type": ma.fields.String(required=True, metadata={"enum": [name]}),
            "data": ma.fields.Nested(DATA_SCHEMAS[name], required=True),
            "walletId": EventCreateSchema._declared_fields["walletId"],
        },
    )


def document_events(spec) -> None:
    """Describe POST /events' body as a `oneOf` keyed on `type`, each with its `data`.

    The marshmallow schema above validates; this gives schema-driven clients the same rules.
    """
    refs = {}
    for name in EVENT_TYPES:
        component = f"{name}Event"
        spec.components.schema(component, schema=_typed_event_schema(name))
        refs[name] = f"#/components/schemas/{component}"
    spec.components.schemas["EventCreate"] = {
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
    }


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
    walletId = ma.fields.UUID(attribute="wallet_id", required=True, allow_none=True)
    # A wallet's row of the global webhook goes by the global webhook's id.
    webhookId = ma.fields.Function(
        lambda delivery: shown_webhook_id(delivery.webhook_id, delivery.target),
        metadata={"type": "string", "format": "uuid", "nullable": True},
    )
    target = ma.fields.String(required=True, metadata={"enum": [t.value for t in Target]})
    url = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": STATUSES})
    round = ma.fields.Integer(required=True)
    attempts = ma.fields.Integer(required=True)
    nextAttemptAt = Timestamp(attribute="next_attempt_at")
    lastStatusCode = ma.fields.Integer(attribute="last_status_code", allow_none=True)
    lastError = ma.fields.String(attribute="last_error", allow_none=True)
    createdAt = Timestamp(attribute="created_at", required=True)
    updatedAt = Timestamp(attribute="updated_at", required=True)


class RedeliverySchema(DeliverySchema):
    outOfOrder = ma.fields.Boolean(
        attribute="out_of_order",
        metadata={
            "description": "True when the webhook keeps each record's order and a later event "
            "of the same record was published: this one arrives after it."
        },
    )
    note = ma.fields.String(attribute="note", allow_none=True)


class DeliveryDetailSchema(DeliverySchema):
    attemptLog = ma.fields.List(ma.fields.Nested(AttemptSchema), attribute="attempt_log")


DeliveryPageSchema = page_schema("DeliveryPageSchema", DeliverySchema)
