"""Rules for what a client may send: webhook URLs, custom headers, and JSON bodies."""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from shared.errors import InvalidInput
from shared.netguard import REFUSED, AddressPolicy
from shared.settings import HEADER_VALUE, is_http_url

MAX_URL_LENGTH = 2048
MAX_CUSTOM_HEADERS = 20
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 1024
MAX_JSON_DEPTH = 64
# RFC 9110 token characters.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the sender owns: letting a tenant set them would corrupt the request or forge
# the signature.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "traceparent"}
)
# How long registration waits for DNS when the network guard is on; the guard checks the
# connected address at delivery anyway, so a slow or failing lookup is not a refusal.
RESOLVE_TIMEOUT = 2.0
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="register-dns")
log = logging.getLogger(__name__)


def check_webhook_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"url: at most {MAX_URL_LENGTH} characters")
    if _has_control_or_surrogate(url):
        raise InvalidInput("url: contains a control character")
    if any(ch.isspace() for ch in url) or not is_http_url(url):
        raise InvalidInput(f"url: not an absolute http(s) URL with a host: {url!r}")
    host = urlsplit(url).hostname or ""
    if not (_HOST_NAME.match(host) or _is_ip_literal(host)):
        raise InvalidInput(f"url: the host is no host name or IP address: {host!r}")
    return url


# Letters, digits and hyphens in dot-separated labels (what DNS resolves, and what the OpenAPI
# document's URL pattern states), besides IP address literals.
_HOST_NAME = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _has_control_or_surrogate(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def check_destination(
    url: str, https_only: bool, policy: AddressPolicy | None, resolve=socket.getaddrinfo
) -> None:
    """Refuse at registration what delivery would refuse (WEBHOOK_HTTPS_ONLY, the guard)."""
    parts = urlsplit(url)
    if https_only and parts.scheme != "https":
        raise InvalidInput("url: plain http is not allowed (WEBHOOK_HTTPS_ONLY)")
    if policy is None:
        return
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        addresses = [host]
    except ValueError:
        addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80), resolve)
    if addresses and not any(policy.permits(address) for address in addresses):
        resolved = ", ".join(sorted(set(addresses)))
        log.warning("network guard refused a registration: %s resolves to %s", host, resolved)
        raise InvalidInput(f"url: {REFUSED}")


def _resolve(host: str, port: int, resolve) -> list[str]:
    """The addresses `host` resolves to now, or [] when it does not resolve in time."""
    future = _resolver.submit(resolve, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=RESOLVE_TIMEOUT)
    except (FutureTimeout, OSError, UnicodeError, ValueError):
        return []
    return [info[4][0] for info in infos]


def check_custom_headers(headers: dict | None) -> dict[str, str]:
    if headers is None:
        return {}
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise InvalidInput(f"customHeaders: at most {MAX_CUSTOM_HEADERS} entries")
    seen = set()
    for name, value in headers.items():
        lowered = name.lower()
        if len(name) > MAX_HEADER_NAME_LENGTH:
            raise InvalidInput(
                f"customHeaders: a header name is over {MAX_HEADER_NAME_LENGTH} characters"
            )
        if not _HEADER_NAME.match(name):
            raise InvalidInput(f"customHeaders: {name!r} is not a valid header name")
        if lowered in RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise InvalidInput(f"customHeaders: {name!r} is set by the service and cannot be set")
        if lowered in seen:
            raise InvalidInput(f"customHeaders: {name!r} is given twice")
        seen.add(lowered)
        if not isinstance(value, str):
            raise InvalidInput(f"customHeaders: the value of {name!r} must be a string")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            raise InvalidInput(
                f"customHeaders: the value of {name!r} is over {MAX_HEADER_VALUE_LENGTH} characters"
            )
        # A leading or trailing space is stripped by receivers; anything outside ASCII is
        # re-encoded or refused by senders.
        if not HEADER_VALUE.match(value):
            # The value itself is not echoed: it is often a secret.
            raise InvalidInput(
                f"customHeaders: the value of {name!r} must be visible ASCII, with spaces only "
                "between other characters"
            )
    return dict(headers)


def check_json_value(value, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON the service cannot store or send back unchanged; the error names where.

    Nesting deeper than `max_depth`, NUL characters and unpaired surrogates (PostgreSQL text
    cannot hold them), and NaN or infinite numbers (not JSON). Iterative, so any depth is safe.
    """
    stack = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidInput(
                    f"{where or 'body'}: JSON nesting deeper than {max_depth} levels"
                )
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _check_json_string(key, where or "body")
                    child_where = f"{where}.{key}" if where else key
                else:
                    child_where = f"{where}[{key}]"
                stack.append((child, depth + 1, child_where))
        elif isinstance(item, str):
            _check_json_string(item, where or "body")
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{where or 'body'}: JSON numbers must be finite")


def _check_json_string(text: str, where: str) -> None:
    if "\0" in text:
        raise InvalidInput(f"{where}: a string contains NUL (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where}: a string contains an unpaired surrogate") from None
