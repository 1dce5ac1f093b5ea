"""How a webhook's requests authenticate to its receiver: `basic` (a user name and password)
or `oauth2` (a client-credentials grant whose access token the worker fetches and caches).

What a client sends is checked here and stored with its secret sealed; answers show the type
and the other fields, never the password or client secret.
"""

from __future__ import annotations

from shared.errors import InvalidInput
from shared.secret_box import SecretBox
from shared.settings import HEADER_VALUE
from shared.validation import check_webhook_url

BASIC, OAUTH2 = "basic", "oauth2"
AUTH_TYPES = (BASIC, OAUTH2)
# RFC 7591's names for how the client authenticates to the token endpoint: HTTP Basic (which
# RFC 6749 says every server supports) or the client id and secret in the form body.
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Per type: the fields shown in answers (besides `type`), and the secret one.
SHOWN = {
    BASIC: ("username",),
    OAUTH2: ("tokenUrl", "clientId", "scope", "audience", "clientAuthentication"),
}
SECRET_FIELD = {BASIC: "password", OAUTH2: "clientSecret"}
MAX_FIELD_LENGTH = 1024


def check_auth(auth: dict | None, box: SecretBox) -> dict | None:
    """The `auth` to store (its secret sealed), from what a client sent."""
    if auth is None:
        return None
    if not isinstance(auth, dict):
        raise InvalidInput("auth: must be an object with a type")
    kind = auth.get("type")
    if kind not in AUTH_TYPES:
        raise InvalidInput(f"auth.type: must be one of {', '.join(AUTH_TYPES)}, got {kind!r}")
    checked = _check_basic(auth) if kind == BASIC else _check_oauth2(auth)
    secret = SECRET_FIELD[kind]
    checked[secret] = box.seal(_text(auth, secret, required=True))
    return {"type": kind, **checked}


def _check_basic(auth: dict) -> dict:
    username = _text(auth, "username", required=True)
    if ":" in username:  # RFC 7617: the user-id cannot hold a colon
        raise InvalidInput("auth.username: must not contain ':'")
    return {"username": username}


def _check_oauth2(auth: dict) -> dict:
    token_url = _text(auth, "tokenUrl", required=True)
    try:
        check_webhook_url(token_url)
    except InvalidInput as exc:
        raise InvalidInput("auth.tokenUrl" + exc.detail.removeprefix("url")) from None
    checked = {"tokenUrl": token_url, "clientId": _text(auth, "clientId", required=True)}
    for name in ("scope", "audience"):
        value = _text(auth, name)
        if value is not None:
            checked[name] = value
    method = auth.get("clientAuthentication")
    if method is None:
        method = CLIENT_AUTH_METHODS[0]
    if method not in CLIENT_AUTH_METHODS:
        raise InvalidInput(
            f"auth.clientAuthentication: must be one of {', '.join(CLIENT_AUTH_METHODS)}"
        )
    checked["clientAuthentication"] = method
    return checked


def _text(auth: dict, name: str, required: bool = False) -> str | None:
    value = auth.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"auth.{name}: required, a non-empty string")
    if len(value) > MAX_FIELD_LENGTH or not HEADER_VALUE.match(value):
        raise InvalidInput(
            f"auth.{name}: visible ASCII with inner spaces, at most {MAX_FIELD_LENGTH} characters"
        )
    return value


def shown_auth(stored: dict | None) -> dict | None:
    """What answers show of a stored `auth`: its type and non-secret fields."""
    if not stored:
        return None
    kind = stored["type"]
    return {"type": kind, **{name: stored[name] for name in SHOWN[kind] if name in stored}}
