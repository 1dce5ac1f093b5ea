"""What the OpenAPI document says beyond the marshmallow fields: the input rules of the core.

The rules live in `shared.validation` and are enforced there; this module only shows them to
schema-driven clients, so that a request the document allows is a request the service accepts.
"""

from __future__ import annotations

from app.openapi_patterns import TOKEN_PATTERN, URL_PATTERN, VISIBLE_ASCII_PATTERN
from app.resources.events.schemas import document_events
from app.resources.webhooks.receiver_schemas import document_receiver_security
from shared.validation import (
    MAX_CUSTOM_HEADERS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_URL_LENGTH,
    RESERVED_HEADERS,
)


def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


def describe_input_rules(spec) -> None:
    document_events(spec)
    document_receiver_security(spec)
    reserved = "|".join(_any_case(name) for name in sorted(RESERVED_HEADERS))
    for component in ("WebhookCreate", "WebhookChange"):
        webhook = spec.components.schemas[component]["properties"]
        webhook["url"].update({"pattern": URL_PATTERN, "maxLength": MAX_URL_LENGTH})
        webhook["url"].pop("format", None)
        webhook["customHeaders"].update(
            {
                "maxProperties": MAX_CUSTOM_HEADERS,
                "propertyNames": {
                    "pattern": TOKEN_PATTERN,
                    "maxLength": MAX_HEADER_NAME_LENGTH,
                    "not": {"pattern": f"^({reserved}|{_any_case('webhook')}-.*)$"},
                },
                "additionalProperties": {
                    "type": "string",
                    "pattern": VISIBLE_ASCII_PATTERN,
                    "maxLength": MAX_HEADER_VALUE_LENGTH,
                },
            }
        )
