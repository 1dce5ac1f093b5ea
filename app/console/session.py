"""Who is signed in to the console, kept in a signed, HttpOnly, SameSite=Strict session cookie.

The cookie holds what the server can check again on every request, never the credential
itself: for a tenant the API key's stored hash (removed key, ended session), for the operator
a digest of ADMIN_TOKEN (changed token, ended session). It also holds the session's CSRF token
and a one-shot notice for the next page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from flask import request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.state import state
from shared.models import DEFAULT_WALLET_ID
from shared.services.overview import wallet_for_key_hash
from shared.services.tenancy import hash_api_key

COOKIE = "console_session"
MAX_AGE = 12 * 3600  # a signed-in console lasts a working day at most


@dataclass
class Viewer:
    """The signed-in person: a tenant (its wallet) or the operator (wallet None)."""

    admin: bool
    wallet_id: uuid.UUID | None


class ConsoleSession:
    def __init__(self, data: dict, ended: str | None = None):
        self.data = data
        self.ended = ended  # why a session that was there is over, for the sign-in page
        self.changed = False

    @property
    def csrf(self) -> str:
        if "csrf" not in self.data:
            self.data["csrf"] = secrets.token_urlsafe(32)
            self.changed = True
        return self.data["csrf"]

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and "csrf" in self.data and hmac.compare_digest(token, self.data["csrf"])

    def notice(self, kind: str, text: str) -> None:
        self.data["notice"] = [kind, text]
        self.changed = True

    def pop_notice(self) -> tuple[str, str] | None:
        notice = self.data.pop("notice", None)
        if notice:
            self.changed = True
        return tuple(notice) if notice else None

    def sign_in(self, who: dict) -> None:
        # A fresh CSRF token at sign-in: one seen before cannot ride on the new session.
        self.data = {"who": who, "csrf": secrets.token_urlsafe(32)}
        self.changed = True

    def sign_out(self, why: str | None = None) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        if why:
            self.data["notice"] = ["error", why]
        self.changed = True


def _serializer() -> URLSafeTimedSerializer:
    app_state = state()
    with app_state.db.session() as session:
        salt = app_state.salt(session)
    key = hmac.new(salt.encode(), b"cloud-agent-webhooks console", hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt="console-session")


def load() -> ConsoleSession:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return ConsoleSession({})
    try:
        return ConsoleSession(_serializer().loads(raw, max_age=MAX_AGE))
    except SignatureExpired:
        return ConsoleSession({}, ended="Your session has expired. Sign in again.")
    except BadSignature:
        return ConsoleSession({})


def save(console: ConsoleSession, response, path: str) -> None:
    if console.changed or console.ended:
        response.set_cookie(
            COOKIE,
            _serializer().dumps(console.data),
            path=path,
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )


def credentials_for(kind: str, secret: str) -> tuple[dict | None, str | None]:
    """What to remember of a valid sign-in, or None and why not. The same checks as the API's
    `apikey` and `x-admin-api-key` headers."""
    app_state = state()
    settings = app_state.settings
    if kind == "admin":
        token = settings.admin_token
        if token is None or not secret or not hmac.compare_digest(secret.encode(), token.encode()):
            return None, "That admin token is not valid."
        return {"admin": _digest(token)}, None
    if not settings.api_key_enabled:
        return {"tenant": ""}, None
    if not secret.strip() or app_state.wallet_for_api_key(secret) is None:
        return None, "That API key is not valid."
    with app_state.db.session() as session:
        return {"tenant": hash_api_key(app_state.salt(session), secret)}, None


def viewer_of(console: ConsoleSession) -> tuple[Viewer | None, str | None]:
    """The signed-in viewer, checked again now; or None and why the session is over."""
    who = console.data.get("who")
    if not who:
        return None, None
    app_state = state()
    if "admin" in who:
        token = app_state.settings.admin_token
        if token is not None and hmac.compare_digest(who["admin"], _digest(token)):
            return Viewer(admin=True, wallet_id=None), None
        return None, "The admin token has changed. Sign in again."
    if not app_state.settings.api_key_enabled:
        return Viewer(admin=False, wallet_id=DEFAULT_WALLET_ID), None
    with app_state.db.session() as session:
        wallet_id = wallet_for_key_hash(session, who.get("tenant", ""))
    if wallet_id is None:
        return None, "Your API key is no longer valid. Sign in with a current key."
    return Viewer(admin=False, wallet_id=wallet_id), None


def _digest(token: str) -> str:
    return hashlib.sha256(b"console admin " + token.encode()).hexdigest()
