"""The rules of an attempt: what request a claimed delivery becomes (URL, headers,
authentication, signatures, the TLS material and OAuth 2 grant the sender uses), and what
follows its outcome (delivered, retried when, waiting, failed). Pure: no I/O and no clock;
callers pass the time. Secrets stored sealed are opened here, for the request only.

The worker sends what `request_for` builds, the console shows what `shown_headers` describes
(the same rules, secrets hidden), and the worker and the sweep move a delivery on with what
`after_attempt` and `after_lost_attempt` decide.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared import __version__, signing
from shared.models import DeliveryStatus, Target
from shared.secret_box import box_for
from shared.settings import Settings
from shared.timeutil import as_utc
from shared.tracing import TRACEPARENT

USER_AGENT = f"cloud-agent-webhooks/{__version__}"


class Outcome(enum.StrEnum):
    """What came of a delivery task."""

    DELIVERED = "delivered"  # the receiver answered 2xx: the delivery ends delivered
    RETRY = "retry"  # the attempt failed with attempts left: the next one is due at retry_at
    FAILED = "failed"  # the round's last attempt failed: the delivery ends failed
    WAIT = "wait"  # no attempt: the delivery waits in the database until its webhook has room
    SKIPPED = "skipped"  # nothing to do: claimed elsewhere, finished, or moved on meanwhile


ENDED = (Outcome.DELIVERED, Outcome.FAILED)  # outcomes that end the delivery's round


# What is sent -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGrant:
    """An OAuth 2 client-credentials grant: the sender adds `Authorization: Bearer <token>`
    with a token it fetched for this grant (or still holds from an earlier attempt)."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    audience: str | None = None
    client_authentication: str = "client_secret_basic"


@dataclass(frozen=True)
class ClientTLS:
    """What the TLS handshake uses beyond the defaults: a client certificate and its key
    (mutual TLS), and a CA that alone is trusted for the receiver's certificate."""

    certificate: str | None
    key: str | None = field(repr=False)
    ca: str | None


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]
    grant: TokenGrant | None = None
    tls: ClientTLS | None = None


def request_for(
    claim, settings: Settings, now: datetime, traceparent: str | None = None
) -> Request:
    """The request an attempt of this claimed delivery (`shared.store.rows.Claim`) sends;
    `traceparent` continues the event's trace to the receiver."""
    box = box_for(settings)
    body = claim.body.encode()
    timestamp = int(now.timestamp())
    message_id = str(claim.event_id)
    secrets = signing_secrets(claim, settings, now)
    signature = signing.signature_header(secrets, message_id, timestamp, body) if secrets else None
    rows = _headers(
        claim.target, claim.custom_headers, claim.auth, settings, message_id, str(timestamp),
        signature, box.open, traceparent,
    )  # fmt: skip
    # A value of None is the OAuth 2 token, which the sender adds.
    headers = {name: value for name, value, _secret in rows if value is not None}
    return Request(
        claim.url, body, headers, _grant(claim.auth, box.open), _client_tls(claim.tls, box.open)
    )


def shown_headers(delivery, webhook, settings: Settings, hidden: str, traceparent=None):
    """[(name, value)] of the headers every attempt of `delivery` sends to `webhook` (None:
    deleted), secret values (custom header values, credentials) replaced by `hidden`,
    per-attempt values described; `traceparent` as the attempt carries it."""
    # Every webhook of a wallet has a secret; the global and operations webhooks have theirs
    # from the settings.
    signed = delivery.target == Target.WALLET or bool(_target_secrets(delivery.target, settings))
    scheme = "v1a,… Ed25519" if webhook is not None and webhook.public_key else "v1,… HMAC-SHA256"
    rows = _headers(
        delivery.target,
        None if webhook is None else webhook.custom_headers,
        None if webhook is None else webhook.auth,
        settings,
        str(delivery.event_id),
        "the attempt's start, in seconds since 1970 (UTC)",
        f"{scheme} signature of id.timestamp.body (not shown)" if signed else None,
        reveal=None,
        traceparent=traceparent,
    )
    return [(name, hidden if secret else value) for name, value, secret in rows]


def _headers(
    target: str,
    custom_headers: Mapping | None,
    auth: Mapping | None,
    settings: Settings,
    message_id: str,
    timestamp: str,
    signature: str | None,
    reveal: Callable[[str], str] | None,
    traceparent: str | None = None,
) -> Iterator[tuple[str, str | None, bool]]:
    """(name, value, whether the value is a secret) of each header, in the order sent.

    `reveal` opens sealed values; None describes the headers without opening anything."""
    yield "Content-Type", "application/json", False
    yield "User-Agent", USER_AGENT, False
    if target == Target.WALLET:
        for name, value in (custom_headers or {}).items():
            # The trace context is the service's own (a webhook stored before it was).
            if name.lower() != TRACEPARENT:
                yield name, reveal(value) if reveal else value, True
        if auth and auth["type"] == "basic":
            password = reveal(auth["password"]) if reveal else ""
            credentials = base64.b64encode(f"{auth['username']}:{password}".encode()).decode()
            yield "Authorization", f"Basic {credentials}", True
        elif auth and auth["type"] == "oauth2":
            yield "Authorization", None if reveal else "Bearer <access token>", True
    if target == Target.GLOBAL and settings.global_webhook_api_key:
        yield "Authorization", f"Bearer {settings.global_webhook_api_key}", True
    yield "webhook-id", message_id, False
    yield "webhook-timestamp", timestamp, False
    if signature is not None:
        yield "webhook-signature", signature, False
    if traceparent is not None:
        yield TRACEPARENT, traceparent, False


def _grant(auth: Mapping | None, reveal: Callable[[str], str]) -> TokenGrant | None:
    if not auth or auth["type"] != "oauth2":
        return None
    return TokenGrant(
        token_url=auth["tokenUrl"],
        client_id=auth["clientId"],
        client_secret=reveal(auth["clientSecret"]),
        scope=auth.get("scope"),
        audience=auth.get("audience"),
        client_authentication=auth.get("clientAuthentication", "client_secret_basic"),
    )


def _client_tls(tls: Mapping | None, reveal: Callable[[str], str]) -> ClientTLS | None:
    if not tls:
        return None
    key = tls.get("clientKey")
    return ClientTLS(
        tls.get("clientCertificate"), reveal(key) if key else None, tls.get("caCertificate")
    )


def signing_secrets(claim, settings: Settings, now: datetime) -> tuple[str, ...]:
    """The secrets that sign an attempt: the target's own, or the webhook's current one and,
    within its grace period after a rotation, the previous one (each a whsec_ HMAC secret or
    a whsk_ Ed25519 key, stored sealed)."""
    if claim.target != Target.WALLET:
        return _target_secrets(claim.target, settings)
    if not claim.secret:
        return ()
    box = box_for(settings)
    expires = claim.previous_secret_expires_at
    if claim.previous_secret and expires is not None and as_utc(expires) > now:
        return (box.open(claim.secret), box.open(claim.previous_secret))
    return (box.open(claim.secret),)


def _target_secrets(target: str, settings: Settings) -> tuple[str, ...]:
    secret = {
        Target.GLOBAL: settings.global_webhook_secret,
        Target.OPERATIONS: settings.operations_webhook_secret,
    }.get(target)
    return (secret,) if secret else ()


# What follows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Where an attempt's outcome leaves its delivery."""

    outcome: Outcome
    status: DeliveryStatus  # the delivery's status from now on
    retry_at: datetime | None = None  # RETRY: when the next attempt is due
    retry_in: float = 0.0  # RETRY: seconds from now to retry_at (the task's countdown)


_STATUS = {
    Outcome.DELIVERED: DeliveryStatus.DELIVERED,
    Outcome.RETRY: DeliveryStatus.PENDING,
    Outcome.FAILED: DeliveryStatus.FAILED,
}


def after_attempt(settings: Settings, number: int, ok: bool, now: datetime) -> Verdict:
    """An attempt (the `number`th of its round) succeeded or failed at `now`.

    A failed attempt with attempts left is retried WEBHOOK_RETRY_COUNTDOWN seconds after it
    ended; the round's last failure fails the delivery.
    """
    if ok:
        return _verdict(Outcome.DELIVERED)
    if number < settings.max_attempts:
        return _retry(settings.webhook_retry_countdown, now)
    return _verdict(Outcome.FAILED)


def after_lost_attempt(settings: Settings, number: int, now: datetime) -> Verdict:
    """An attempt whose worker stopped before recording it counts as failed; the next one,
    if the round has one left, is due at once (it waited for the lease to run out already)."""
    if number < settings.max_attempts:
        return _retry(0.0, now)
    return _verdict(Outcome.FAILED)


def _verdict(outcome: Outcome) -> Verdict:
    return Verdict(outcome, _STATUS[outcome])


def _retry(seconds: float, now: datetime) -> Verdict:
    return Verdict(Outcome.RETRY, DeliveryStatus.PENDING, now + timedelta(seconds=seconds), seconds)


# What an attempt says about its receiver ------------------------------------------------


class Signal(enum.StrEnum):
    """What an attempt's answer says about the receiver, as Standard Webhooks reads it."""

    UP = "up"  # 2xx
    DOWN = "down"  # no answer, 5xx, 408 or 429: counts towards opening its circuit
    REFUSED = "refused"  # another 4xx: this delivery failed, the receiver itself is up
    GONE = "gone"  # 410: the receiver asks to be disabled


# Answers that ask the sender to slow down: the webhook is held (Retry-After, if given).
THROTTLING = (429, 502, 503, 504)


def signal_of(status_code: int | None) -> Signal:
    if status_code is not None and 200 <= status_code < 300:
        return Signal.UP
    if status_code == 410:
        return Signal.GONE
    if status_code is not None and 400 <= status_code < 500 and status_code not in (408, 429):
        return Signal.REFUSED
    return Signal.DOWN


def hold_until(
    settings: Settings, status_code: int | None, retry_after: float | None, now: datetime
) -> datetime | None:
    """How long an answer holds its webhook's attempts: a throttling answer for its
    Retry-After (capped at WEBHOOK_RETRY_AFTER_MAX), or one retry countdown without one."""
    if status_code not in THROTTLING:
        return None
    seconds = settings.webhook_retry_countdown if retry_after is None else retry_after
    return now + timedelta(seconds=min(seconds, settings.retry_after_max))


def opens_circuit(
    settings: Settings, consecutive_failures: int, last_success_at: datetime | None, now
) -> bool:
    """A webhook is failing after WEBHOOK_CIRCUIT_FAILURES consecutive failed attempts with no
    success for two retry countdowns: a receiver that accepts retries keeps its circuit
    closed, so the circuit never makes it wait longer than three attempts 5 s apart would."""
    if consecutive_failures < settings.circuit_failures:
        return False
    quiet = timedelta(seconds=2 * settings.webhook_retry_countdown)
    return last_success_at is None or now - as_utc(last_success_at) >= quiet


def next_probe_interval(settings: Settings, interval: float | None) -> float:
    """A failing webhook's probe failed: the wait before the next one doubles, within bounds."""
    doubled = min((interval or 0) * 2, settings.probe_max_interval)
    return max(doubled, settings.probe_interval)
