"""The catalogue's entries, derived from what the API validates with: each type's row in
`shared.event_types` and its marshmallow `data` schema, turned into JSON Schema by the same
converter that writes the OpenAPI document, so the two cannot disagree."""

from __future__ import annotations

import uuid
from functools import lru_cache

from apispec.ext.marshmallow.openapi import OpenAPIConverter

from app.resources.events.schemas import DATA_SCHEMAS, WebhookTestDataSchema
from shared.event_types import (
    EVENT_TYPES,
    TEST_EVENT_DESCRIPTION,
    TEST_EVENT_SCHEMA_VERSION,
    TEST_EVENT_TYPE,
    webhook_test_data,
)
from shared.models import DEFAULT_WALLET_ID

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EXAMPLE_EVENT_ID = "cb8d4e96-30f0-4892-863f-44d49d634211"
EXAMPLE_TS = "2023-07-06T12:01:19.769427Z"


def json_schema(schema) -> dict:
    """JSON Schema of a marshmallow schema (OpenAPI 3.0's `example` becomes `examples`)."""
    converter = OpenAPIConverter(openapi_version="3.0.3", schema_name_resolver=None, spec=None)
    converted = converter.schema2jsonschema(schema)
    for field in converted.get("properties", {}).values():
        if "example" in field:
            field["examples"] = [field.pop("example")]
    return {"$schema": JSON_SCHEMA_DIALECT, **converted}


def _example(event_type: str, data: dict) -> dict:
    return {
        "type": event_type,
        "id": EXAMPLE_EVENT_ID,
        "ts": EXAMPLE_TS,
        "data": data,
        "walletId": str(DEFAULT_WALLET_ID),
    }


@lru_cache(maxsize=1)
def catalogue() -> list[dict]:
    entries = [
        {
            "type": name,
            "description": kind.description,
            "schemaVersion": kind.schema_version,
            "dataSchema": json_schema(DATA_SCHEMAS[name]),
            "example": _example(name, kind.example_data()),
            "publishable": True,
        }
        for name, kind in EVENT_TYPES.items()
    ]
    entries.append(
        {
            "type": TEST_EVENT_TYPE,
            "description": TEST_EVENT_DESCRIPTION,
            "schemaVersion": TEST_EVENT_SCHEMA_VERSION,
            "dataSchema": json_schema(WebhookTestDataSchema),
            "example": _example(TEST_EVENT_TYPE, webhook_test_data(uuid.UUID(int=1))),
            "publishable": False,
        }
    )
    return entries
