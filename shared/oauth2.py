"""OAuth 2 access tokens for receivers behind a gateway: the client-credentials grant (RFC 6749
§4.4), fetched through the sender's pool (so the network guard and the attempt's hard
deadline apply to the token endpoint too), and kept per worker process until shortly before
they expire.

One token per grant per process: the threads that need a token while it is being fetched wait
for that one request instead of sending their own, so a burst of deliveries costs one token
request, not one per delivery.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import urllib3

from shared import deadline
from shared.attempt_rules import USER_AGENT, TokenGrant
from shared.settings import HEADER_VALUE

# A token is renewed this long before its expires_in ends (at most a tenth of its life), so
# that it does not expire on its way to the receiver.
RENEW_EARLY = 30.0
# A token whose answer gives no expires_in is renewed after this long (or at a 401).
DEFAULT_LIFETIME = 3600.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_GRANTS = 10_000  # a crude bound: a webhook whose credentials change leaves its old grant
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")  # RFC 6749 §5.2 codes, safe to repeat


class TokenUnavailable(Exception):
    """No token for this attempt; the message says why (and holds no secret)."""


@dataclass(frozen=True)
class _Held:
    token: str
    renew_at: float  # on the monotonic clock


class TokenCache:
    """The tokens of one process, shared by its threads."""

    def __init__(self):
        self._held: dict[TokenGrant, _Held] = {}
        self._fetching: dict[TokenGrant, threading.Lock] = {}
        self._lock = threading.Lock()

    def token(
        self,
        grant: TokenGrant,
        fetch: Callable[[TokenGrant], tuple[str, float]],
        limit: deadline.Deadline,
    ) -> str:
        """A valid token for `grant`: the one held, or one `fetch` gets (one thread at a time
        per grant; the others wait for it until their attempt's deadline)."""
        held = self._valid(grant)
        if held is not None:
            return held
        with self._lock:
            fetching = self._fetching.setdefault(grant, threading.Lock())
        if not fetching.acquire(timeout=limit.remaining()):
            raise TokenUnavailable("timeout: waited for a token until the attempt's deadline")
        try:
            held = self._valid(grant)  # another thread may have just fetched it
            if held is not None:
                return held
            token, lifetime = fetch(grant)
            with self._lock:
                if len(self._held) >= MAX_GRANTS:
                    self._held.clear()
                renew_in = max(lifetime - min(RENEW_EARLY, lifetime / 10), 0.0)
                self._held[grant] = _Held(token, time.monotonic() + renew_in)
            return token
        finally:
            fetching.release()

    def drop(self, grant: TokenGrant, token: str) -> None:
        """The receiver refused `token` (401): the next attempt fetches a new one."""
        with self._lock:
            held = self._held.get(grant)
            if held is not None and held.token == token:
                del self._held[grant]

    def _valid(self, grant: TokenGrant) -> str | None:
        held = self._held.get(grant)
        if held is not None and held.renew_at > time.monotonic():
            return held.token
        return None


def fetch_token(pool: urllib3.PoolManager, grant: TokenGrant, timeout: float) -> tuple[str, float]:
    """(access token, seconds it lives) from the grant's token endpoint."""
    form = {"grant_type": "client_credentials"}
    if grant.scope:
        form["scope"] = grant.scope
    if grant.audience:
        form["audience"] = grant.audience
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if grant.client_authentication == "client_secret_post":
        form.update(client_id=grant.client_id, client_secret=grant.client_secret)
    else:
        # RFC 6749 §2.3.1: each part form-encoded, then HTTP Basic.
        pair = f"{quote(grant.client_id, safe='')}:{quote(grant.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    response = pool.urlopen(
        "POST",
        grant.token_url,
        body=urlencode(form),
        headers=headers,
        timeout=urllib3.Timeout(total=timeout),
        retries=False,
        redirect=False,
        preload_content=False,
        assert_same_host=False,
    )
    try:
        raw = response.read(MAX_ANSWER_BYTES + 1)
    finally:
        # The connection goes back to the pool, where another attempt may take it: this
        # attempt's deadline must no longer be able to shut its socket down.
        limit, connection = deadline.current(), response.connection
        if limit is not None and connection is not None and connection.sock is not None:
            limit.forget(connection.sock)
        response.release_conn()
    return _token_of(response.status, raw)


def _token_of(status: int, raw: bytes) -> tuple[str, float]:
    try:
        answer = json.loads(raw) if len(raw) <= MAX_ANSWER_BYTES else None
    except ValueError:
        answer = None
    if not 200 <= status < 300:
        code = answer.get("error") if isinstance(answer, dict) else None
        detail = f" ({code})" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
        raise TokenUnavailable(f"oauth2: the token endpoint answered {status}{detail}")
    if not isinstance(answer, dict):
        raise TokenUnavailable("oauth2: the token endpoint's answer is not a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenUnavailable("oauth2: the token endpoint's answer has no access_token")
    if not HEADER_VALUE.match(token):
        raise TokenUnavailable("oauth2: the access token is not a valid header value")
    kind = answer.get("token_type", "bearer")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenUnavailable("oauth2: the token endpoint gave a token that is not a Bearer")
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isdigit():  # some servers send a string
        lifetime = int(lifetime)
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    return token, float(lifetime)
