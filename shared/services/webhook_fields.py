"""What a client may set on a webhook, checked and made ready to store (secrets sealed), for
registration and for changes alike."""

from __future__ import annotations

from shared.errors import InvalidInput
from shared.event_types import EVENT_TYPES
from shared.netguard import AddressPolicy
from shared.receiver_auth import check_auth
from shared.secret_box import SecretBox
from shared.settings import Settings
from shared.tls_material import check_tls
from shared.validation import check_custom_headers, check_destination, check_webhook_url

# What answers show for every custom header value: the values are secrets more often than
# not, and the name says what each header is for. Sent back unchanged in a change, this value
# keeps the stored one.
HIDDEN_VALUE = "••••••"


def checked_url(url: str, settings: Settings, what: str = "url") -> str:
    """A URL delivery can use; with the guard or WEBHOOK_HTTPS_ONLY on, one they let through."""
    try:
        url = check_webhook_url(url)
        policy = None
        if settings.webhook_block_private_networks:
            policy = AddressPolicy(settings.webhook_allowed_networks)
        check_destination(url, settings.webhook_https_only, policy)
    except InvalidInput as exc:
        raise InvalidInput(what + exc.detail.removeprefix("url")) from None
    return url


def sealed_headers(headers: dict | None, box: SecretBox, stored: dict | None = None) -> dict:
    """The custom headers to store, values sealed. A value sent back as HIDDEN_VALUE for a
    header the webhook has keeps its stored value."""
    stored = stored or {}
    candidate = {
        name: box.open(stored[name]) if value == HIDDEN_VALUE and name in stored else value
        for name, value in (headers or {}).items()
    }
    return box.seal_values(check_custom_headers(candidate))


def check_event_types(event_types: list[str] | None) -> list[str] | None:
    if event_types is None:
        return None
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"eventTypes: unknown {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}"
        )
    return sorted(set(event_types))


def receiver_auth(
    auth: dict | None, headers: dict, settings: Settings, box: SecretBox
) -> dict | None:
    """The `auth` to store; refused beside an Authorization custom header, and for a token
    endpoint delivery could not reach."""
    checked = check_auth(auth, box)
    if checked is None:
        return None
    check_auth_beside_headers(checked, headers)
    if checked["type"] == "oauth2":
        checked_url(checked["tokenUrl"], settings, "auth.tokenUrl")
    return checked


def check_auth_beside_headers(auth: dict | None, headers: dict) -> None:
    """An `auth` and an Authorization custom header: one would silently replace the other."""
    if auth and any(name.lower() == "authorization" for name in headers):
        raise InvalidInput("auth: cannot be combined with an Authorization custom header")


def receiver_tls(tls: dict | None, url: str, box: SecretBox, stored=None) -> dict | None:
    """The `tls` to store (`stored`: the webhook's, whose key a change may keep)."""
    checked = check_tls(tls, box, stored)
    check_tls_beside_url(checked, url)
    return checked


def check_tls_beside_url(tls: dict | None, url: str) -> None:
    if tls and not url.lower().startswith("https://"):
        raise InvalidInput("tls: the webhook's url must be https")
