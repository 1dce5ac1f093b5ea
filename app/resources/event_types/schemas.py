import marshmallow as ma

from app.base import Schema, page_schema


class EventTypeSchema(Schema):
    type = ma.fields.String(required=True, metadata={"example": "ConnectionUpdated"})
    description = ma.fields.String(required=True)
    schemaVersion = ma.fields.String(
        required=True,
        metadata={"description": "Raised when what data must carry changes.", "example": "1.0"},
    )
    dataSchema = ma.fields.Dict(
        required=True,
        metadata={
            "description": "JSON Schema (2020-12) of the event's data: the rules POST /events "
            "checks; other fields pass through unchanged."
        },
    )
    example = ma.fields.Dict(
        required=True, metadata={"description": "An event of this type as a receiver gets it."}
    )
    publishable = ma.fields.Boolean(
        required=True,
        metadata={"description": "False for WebhookTest, which only the test route sends."},
    )


EventTypePageSchema = page_schema("EventTypePageSchema", EventTypeSchema)
