"""Who is signed in to the console: a cookie signed with SECRET_KEY that holds a session's
random token, a CSRF token and a one-shot notice; the session itself is a database row.

Nothing in the database makes a cookie: the row keeps only the token's SHA-256, and the
signing key is not stored there. A session ends at a fixed time (12 hours after a sign-in, an
hour after a link opened it), and signing out deletes its row, so a copied cookie stops
working too. What the session stands on is checked again on every request: a tenant's key
(removed key, ended session), or the admin token (changed token, ended session).

A session opened by a link has a cookie of its own that another site's frame can carry.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import uuid
from dataclasses import dataclass

from flask import request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.state import state
from shared.models import DEFAULT_WALLET_ID, ConsoleAccess
from shared.services import console_access
from shared.services.console_access import LINK_SESSION_SECONDS, SIGNED_IN_SECONDS
from shared.services.tenancy import hash_api_key
from shared.timeutil import as_utc, utcnow

COOKIE = "console_session"  # signed in with a key or the admin token: SameSite=Strict
LINK_COOKIE = "console_link_session"  # opened by a link: may live in another site's frame


@dataclass
class Viewer:
    """The signed-in person: a tenant (its wallet) or the operator (wallet None)."""

    admin: bool
    wallet_id: uuid.UUID | None
    via_link: bool = False  # opened by a link: this wallet's pages only, framing allowed


class ConsoleCookie:
    """The cookie's content, as this request found it and leaves it."""

    def __init__(self, data: dict, via_link: bool = False, ended: str | None = None):
        self.data = data
        self.via_link = via_link  # which cookie it lives in
        self.ended = ended  # why a session that was there is over, for the next page
        self.changed = False

    @property
    def token(self) -> str | None:
        return self.data.get("sid")

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

    def sign_in(self, token: str, via_link: bool = False) -> None:
        # A fresh CSRF token at sign-in: one seen before cannot ride on the new session.
        self.data = {"sid": token, "csrf": secrets.token_urlsafe(32)}
        self.via_link = via_link
        self.changed = True

    def sign_out(self, why: str | None = None) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        if why:
            self.data["notice"] = ["error", why]
        self.changed = True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state().settings.secret_key, salt="console-session")


def load() -> ConsoleCookie:
    # A link's session first: opening a link replaces a sign-in (and the reverse), so a
    # browser holds both only when a frame of another site holds the link's.
    for name, via_link in ((LINK_COOKIE, True), (COOKIE, False)):
        raw = request.cookies.get(name)
        if not raw:
            continue
        try:
            return ConsoleCookie(_serializer().loads(raw, max_age=SIGNED_IN_SECONDS), via_link)
        except SignatureExpired:
            return ConsoleCookie({}, via_link, "Your session has expired. Sign in again.")
        except BadSignature:
            continue
    return ConsoleCookie({})


def save(console: ConsoleCookie, response, path: str) -> None:
    if not (console.changed or console.ended):
        return
    value = _serializer().dumps(console.data)
    name, other = (LINK_COOKIE, COOKIE) if console.via_link else (COOKIE, LINK_COOKIE)
    response.set_cookie(name, value, path=path, httponly=True, **_attributes(name))
    if other in request.cookies:
        response.delete_cookie(other, path=path, httponly=True, **_attributes(other))


def _attributes(name: str) -> dict:
    if name == COOKIE:
        return {"secure": request.is_secure, "samesite": "Strict"}
    # In another site's frame a browser stores and sends only a Secure, SameSite=None,
    # Partitioned cookie (keyed to that site). Browsers allow Secure on loopback over http.
    if request.is_secure or _is_loopback(request.host):
        return {"secure": True, "samesite": "None", "partitioned": True}
    return {"secure": False, "samesite": "Lax"}  # plain http: top-level opening only


def _is_loopback(host: str) -> bool:
    name = host if host.endswith("]") else host.rsplit(":", 1)[0]
    name = name.strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def start(access: ConsoleAccess, wallet_id=None, credential: str | None = None) -> str:
    """A new session; its token, for `ConsoleCookie.sign_in`."""
    seconds = LINK_SESSION_SECONDS if access == ConsoleAccess.LINK else SIGNED_IN_SECONDS
    with state().db.transaction() as session:
        return console_access.start_session(
            session, access, utcnow(), seconds, wallet_id=wallet_id, credential=credential
        )


def end(console: ConsoleCookie) -> None:
    if console.token:
        with state().db.transaction() as session:
            console_access.end_session(session, console.token)


def credentials_for(kind: str, secret: str) -> tuple[tuple | None, str | None]:
    """(access, credential) to start a session with, or None and why not. The same checks as
    the API's `apikey` and `x-admin-api-key` headers."""
    app_state = state()
    settings = app_state.settings
    if kind == "admin":
        token = settings.admin_token
        if token is None or not secret or not hmac.compare_digest(secret.encode(), token.encode()):
            return None, "That admin token is not valid."
        return (ConsoleAccess.OPERATOR, _admin_digest(token)), None
    if not settings.api_key_enabled:
        return (ConsoleAccess.TENANT, ""), None
    if not secret.strip() or app_state.wallet_for_api_key(secret) is None:
        return None, "That API key is not valid."
    with app_state.db.session() as session:
        return (ConsoleAccess.TENANT, hash_api_key(app_state.salt(session), secret)), None


def viewer_of(console: ConsoleCookie) -> tuple[Viewer | None, str | None]:
    """The signed-in viewer, checked again now; or None and why the session is over."""
    if console.ended:
        return None, console.ended
    if not console.token:
        return None, None
    app_state = state()
    with app_state.db.session() as session:
        found = console_access.find_session(session, console.token)
    again = "Open the console again from where you came." if console.via_link else "Sign in again."
    if found is None:
        return None, f"Your session has ended. {again}"
    if as_utc(found.expires_at) <= utcnow():
        return None, f"Your session has expired. {again}"
    if found.access == ConsoleAccess.LINK:
        return Viewer(admin=False, wallet_id=found.wallet_id, via_link=True), None
    if found.access == ConsoleAccess.OPERATOR:
        token = app_state.settings.admin_token
        if token is not None and hmac.compare_digest(found.credential or "", _admin_digest(token)):
            return Viewer(admin=True, wallet_id=None), None
        return None, "The admin token has changed. Sign in again."
    if not app_state.settings.api_key_enabled:
        return Viewer(admin=False, wallet_id=DEFAULT_WALLET_ID), None
    if found.wallet_id is None:
        return None, "Your API key is no longer valid. Sign in with a current key."
    return Viewer(admin=False, wallet_id=found.wallet_id), None


def _admin_digest(token: str) -> str:
    # Keyed with SECRET_KEY: the stored digest gives no way to test guesses of the token.
    key = state().settings.secret_key.encode()
    return hmac.new(key, b"console admin " + token.encode(), hashlib.sha256).hexdigest()
