"""The rules of an attempt: what request a claimed delivery becomes (URL, headers,
authentication, signatures), and what follows its outcome (delivered, retried when, waiting,
failed). Pure: no I/O and no clock; callers pass the time.

The worker sends what `request_for` builds, the console shows what `shown_headers` describes
(the same rules, secrets hidden), and the worker and the sweep move a delivery on with what
`after_attempt` and `after_lost_attempt` decide.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import __version__, signing
from shared.models import DeliveryStatus, Target
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
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def request_for(
    claim, settings: Settings, now: datetime, traceparent: str | None = None
) -> Request:
    """The request an attempt of this claimed delivery (`shared.store.rows.Claim`) sends;
    `traceparent` continues the event's trace to the receiver."""
    body = claim.body.encode()
    timestamp = int(now.timestamp())
    message_id = str(claim.event_id)
    secrets = signing_secrets(claim, settings, now)
    signature = signing.signature_header(secrets, message_id, timestamp, body) if secrets else None
    rows = _headers(
        claim.target,
        claim.custom_headers,
        settings,
        message_id,
        str(timestamp),
        signature,
        traceparent,
    )
    headers = {name: value for name, value, _secret in rows}
    return Request(claim.url, body, headers)


def shown_headers(
    delivery,
    custom_headers: Mapping | None,
    settings: Settings,
    hidden: str,
    traceparent: str | None = None,
):
    """[(name, value)] of the headers every attempt of `delivery` sends, secret values (custom
    header values, credentials) replaced by `hidden`, per-attempt values described."""
    # Every webhook of a wallet has a secret; the global and operations webhooks have theirs
    # from the settings.
    signed = delivery.target == Target.WALLET or bool(_target_secrets(delivery.target, settings))
    rows = _headers(
        delivery.target, custom_headers, settings, str(delivery.event_id),
        "the attempt's start, in seconds since 1970 (UTC)",
        "v1,… HMAC-SHA256 of id.timestamp.body (not shown)" if signed else None,
        traceparent,
    )  # fmt: skip
    return [(name, hidden if secret else value) for name, value, secret in rows]


def _headers(
    target: str,
    custom_headers: Mapping | None,
    settings: Settings,
    message_id: str,
    timestamp: str,
    signature: str | None,
    traceparent: str | None = None,
) -> Iterator[tuple[str, str, bool]]:
    """(name, value, whether the value is a secret) of each header, in the order sent."""
    yield "Content-Type", "application/json", False
    yield "User-Agent", USER_AGENT, False
    if target == Target.WALLET:
        for name, value in (custom_headers or {}).items():
            # The trace context is the service's own (a webhook stored before it was).
            if name.lower() != TRACEPARENT:
                yield name, value, True
    if target == Target.GLOBAL and settings.global_webhook_api_key:
        yield "Authorization", f"Bearer {settings.global_webhook_api_key}", True
    yield "webhook-id", message_id, False
    yield "webhook-timestamp", timestamp, False
    if signature is not None:
        yield "webhook-signature", signature, False
    if traceparent is not None:
        yield TRACEPARENT, traceparent, False


def signing_secrets(claim, settings: Settings, now: datetime) -> tuple[str, ...]:
    """The secrets that sign an attempt: the target's own, or the webhook's current one and,
    within its grace period after a rotation, the previous one."""
    if claim.target != Target.WALLET:
        return _target_secrets(claim.target, settings)
    if claim.secret is None:
        return ()
    expires = claim.previous_secret_expires_at
    if claim.previous_secret and expires is not None and as_utc(expires) > now:
        return (claim.secret, claim.previous_secret)
    return (claim.secret,)


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


def hold_until(settings: Settings, retry_after: float | None, now: datetime) -> datetime | None:
    """How long a receiver's Retry-After holds its webhook's attempts (capped), if it said."""
    if retry_after is None:
        return None
    return now + timedelta(seconds=min(retry_after, settings.retry_after_max))


def next_probe_interval(settings: Settings, interval: float | None) -> float:
    """A failing webhook's probe failed: the wait before the next one doubles, within bounds."""
    doubled = min((interval or 0) * 2, settings.probe_max_interval)
    return max(doubled, settings.probe_interval)
