"""What the OpenAPI document says beyond the marshmallow fields: the input rules of the core.

The rules live in `shared.validation` and are enforced there; this module only shows them to
schema-driven clients, so that a request the document allows is a request the service accepts.
"""

from __future__ import annotations

from app.resources.events.schemas import document_events
from shared.validation import (
    MAX_CUSTOM_HEADERS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_URL_LENGTH,
    RESERVED_HEADERS,
)

# An absolute http(s) URL with a host: the subset of what the service accepts that OpenAPI 3.0
# can state (no control characters, spaces or credentials).
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
)
TOKEN_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
VISIBLE_ASCII_PATTERN = r"^([!-~]([ -~]*[!-~])?)?$"


def _any_case(name: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


def describe_input_rules(spec) -> None:
    document_events(spec)
    webhook = spec.components.schemas["WebhookCreate"]["properties"]
    webhook["url"].update({"pattern": URL_PATTERN, "maxLength": MAX_URL_LENGTH})
    webhook["url"].pop("format", None)
    reserved = "|".join(_any_case(name) for name in sorted(RESERVED_HEADERS))
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
