"""Rules for what a tenant may register: webhook URLs and custom headers."""

from __future__ import annotations

import re

from shared.errors import InvalidInput
from shared.settings import is_http_url

MAX_URL_LENGTH = 2048
MAX_CUSTOM_HEADERS = 20
MAX_HEADER_VALUE_LENGTH = 1024
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the sender owns: letting a tenant set them would corrupt the request or forge
# the signature.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)


def check_webhook_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url: at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in url) or not is_http_url(url):
        raise InvalidInput(f"url: not an absolute http(s) URL with a host: {url!r}")
    return url


def check_custom_headers(headers: dict | None) -> dict[str, str]:
    if headers is None:
        return {}
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidInput(f"customHeaders: at most {MAX_CUSTOM_HEADERS} entries")
    seen = set()
    for name, value in headers.items():
        lowered = name.lower()
        if not _HEADER_NAME.match(name):
            raise InvalidInput(f"customHeaders: {name!r} is not a valid header name")
        if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise InvalidInput(f"customHeaders: {name!r} is set by the service and cannot be set")
        if lowered in seen:
            raise InvalidInput(f"customHeaders: {name!r} is given twice")
        seen.add(lowered)
        if not isinstance(value, str):
            raise InvalidInput(f"customHeaders: the value of {name!r} must be a string")
        if "\r" in value or "\n" in value or "\0" in value:
            raise InvalidInput(f"customHeaders: the value of {name!r} contains a line break")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            raise InvalidInput(
                f"customHeaders: the value of {name!r} is over {MAX_HEADER_VALUE_LENGTH} characters"
            )
    return dict(headers)
