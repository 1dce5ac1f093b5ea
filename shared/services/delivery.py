"""One delivery attempt: claim the row, POST the stored bytes, record what happened.

The claim is an atomic UPDATE committed before the HTTP call, so a duplicate task message finds
nothing to claim, and the attempt count in the database, not Celery's retry counter, decides
whether another attempt is allowed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from shared import signing
from shared.db import Database
from shared.metrics import MetricsRecorder
from shared.models import Attempt, Delivery, Event, Webhook
from shared.sender import USER_AGENT, Sender, SendResult
from shared.settings import Settings
from shared.throttle import ReceiverLimiter
from shared.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

DELIVERED, RETRY, FAILED, SKIPPED = "delivered", "retry", "failed", "skipped"
DEFERRED = "deferred"
# A retry message may run a moment before the time the database set (clock skew).
DUE_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    round: int
    number: int
    event_id: uuid.UUID
    target: str
    url: str
    body: str
    custom_headers: dict
    secrets: tuple[str, ...]


def _from_webhook(column):
    return select(column).where(Webhook.id == Delivery.webhook_id).scalar_subquery()


# Everything an attempt needs, read by the statement that claims the row.
CLAIM_RETURNING = (
    Delivery.round,
    Delivery.attempts,
    Delivery.event_id,
    Delivery.target,
    Delivery.url,
    select(Event.body).where(Event.id == Delivery.event_id).scalar_subquery(),
    _from_webhook(Webhook.custom_headers),
    _from_webhook(Webhook.secret),
    _from_webhook(Webhook.previous_secret),
    _from_webhook(Webhook.previous_secret_expires_at),
)
CLAIMED_VALUES = {
    "status": "in_flight",
    "attempts": Delivery.attempts + 1,
    "lease_until": bindparam("b_lease_until"),
    "updated_at": bindparam("now"),
}

# The hot-path statements are built once: building and hashing them on every call cost more
# CPU than the database round trips themselves.
_CLAIM = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("delivery_id"),
        Delivery.status == "pending",
        Delivery.attempts < bindparam("max_attempts"),
        Delivery.next_attempt_at <= bindparam("due_by"),
    )
    .values(**CLAIMED_VALUES)
    .returning(*CLAIM_RETURNING)
)


def claim_params(settings: Settings, now: datetime) -> dict:
    return {
        "max_attempts": settings.max_attempts,
        "due_by": now + DUE_SLACK,
        "b_lease_until": now + timedelta(seconds=settings.lease_seconds),
        "now": now,
    }


def claim(conn: Connection, settings: Settings, delivery_id: uuid.UUID, now: datetime):
    """Take the delivery for one attempt, and read all the attempt needs, in one statement."""
    params = {**claim_params(settings, now), "delivery_id": delivery_id}
    row = conn.execute(_CLAIM, params).one_or_none()
    return None if row is None else claim_from_row(settings, delivery_id, row, now)


def claim_from_row(settings: Settings, delivery_id: uuid.UUID, row, now: datetime) -> Claim:
    """A Claim from the columns of CLAIM_RETURNING."""
    round_, number, event_id, target, url, body, custom_headers, secret, previous, expires = row
    headers, secrets = {}, ()
    if target == "global":
        if settings.global_webhook_api_key:
            headers = {"Authorization": f"Bearer {settings.global_webhook_api_key}"}
        if settings.global_webhook_secret:
            secrets = (settings.global_webhook_secret,)
    elif secret is not None:
        headers = custom_headers or {}
        secrets = (secret,)
        if previous and expires is not None and as_utc(expires) > now:
            secrets += (previous,)
    return Claim(delivery_id, round_, number, event_id, target, url, body, headers, secrets)


def request_headers(claimed: Claim, timestamp: int, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(claimed.custom_headers)
    msg_id = str(claimed.event_id)
    headers["webhook-id"] = msg_id
    headers["webhook-timestamp"] = str(timestamp)
    if claimed.secrets:
        headers["webhook-signature"] = signing.signature_header(
            claimed.secrets, msg_id, timestamp, body
        )
    return headers


# An UPDATE of the claimed row that matches only while this attempt still owns it.
_STILL_CLAIMED = update(Delivery).where(
    Delivery.id == bindparam("b_delivery_id"),
    Delivery.status == "in_flight",
    Delivery.round == bindparam("b_round"),
    Delivery.attempts == bindparam("b_number"),
)
_ATTEMPT = insert(Attempt).values(
    delivery_id=bindparam("b_delivery_id"),
    round=bindparam("b_round"),
    number=bindparam("b_number"),
    started_at=bindparam("b_started_at"),
    duration_ms=bindparam("b_duration_ms"),
    status_code=bindparam("b_status_code"),
    error=bindparam("b_error"),
)
# The delivery's status after an attempt with each outcome.
STATUS_AFTER = {DELIVERED: "delivered", FAILED: "failed", RETRY: "pending"}
_OUTCOME_VALUES = {
    DELIVERED: {"status": STATUS_AFTER[DELIVERED]},
    FAILED: {"status": STATUS_AFTER[FAILED]},
    RETRY: {
        "status": STATUS_AFTER[RETRY],
        "next_attempt_at": bindparam("retry_at"),
        "enqueued_at": bindparam("b_now"),
    },
}
_MOVE_ON = {
    outcome: _STILL_CLAIMED.values(
        **values,
        lease_until=None,
        updated_at=bindparam("b_now"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
    )
    for outcome, values in _OUTCOME_VALUES.items()
}
# PostgreSQL inserts the attempt in a CTE of the update: one statement, one round trip.
_MOVE_ON_WITH_ATTEMPT = {
    outcome: statement.add_cte(_ATTEMPT.cte("attempt")) for outcome, statement in _MOVE_ON.items()
}
_DEFER = _STILL_CLAIMED.values(
    status="pending",
    attempts=Delivery.attempts - 1,
    lease_until=None,
    updated_at=bindparam("b_now"),
    next_attempt_at=bindparam("retry_at"),
    enqueued_at=bindparam("b_now"),
)


def _owner_params(claimed: Claim) -> dict:
    """What identifies the attempt that owns the claimed row."""
    return {"b_delivery_id": claimed.id, "b_round": claimed.round, "b_number": claimed.number}


def outcome_of(settings: Settings, claimed: Claim, result: SendResult) -> str:
    if result.ok:
        return DELIVERED
    return RETRY if claimed.number < settings.max_attempts else FAILED


def record(
    conn: Connection, settings: Settings, claimed: Claim, started: datetime, result: SendResult
) -> str:
    """Store the attempt and move the delivery on, in one statement on PostgreSQL."""
    now = utcnow()
    outcome = outcome_of(settings, claimed, result)
    params = {
        **_owner_params(claimed),
        "b_started_at": started,
        "b_duration_ms": result.duration_ms,
        "b_status_code": result.status_code,
        "b_error": result.error,
        "b_now": now,
        "retry_at": now + timedelta(seconds=settings.webhook_retry_countdown),
    }
    if outcome != RETRY:
        del params["retry_at"]
    if conn.dialect.name == "postgresql":
        changed = conn.execute(_MOVE_ON_WITH_ATTEMPT[outcome], params).rowcount
    else:
        conn.execute(_ATTEMPT, params)
        changed = conn.execute(_MOVE_ON[outcome], params).rowcount
    # The row moved on without us (cancelled, or the sweep declared this attempt lost).
    return outcome if changed else SKIPPED


def defer(conn: Connection, claimed: Claim, seconds: float) -> None:
    """Give the claim back without spending an attempt; the delivery is due again later."""
    now = utcnow()
    params = {**_owner_params(claimed), "b_now": now}
    conn.execute(_DEFER, {**params, "retry_at": now + timedelta(seconds=seconds)})


class DirectStore:
    """Claims and records as statements of their own, each on a pooled connection."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        with self.db.statements() as conn:
            return claim(conn, self.settings, delivery_id, utcnow())

    def record(self, claimed: Claim, started: datetime, result: SendResult) -> str:
        with self.db.statements() as conn:
            return record(conn, self.settings, claimed, started, result)

    def defer(self, claimed: Claim, seconds: float) -> None:
        with self.db.statements() as conn:
            defer(conn, claimed, seconds)


def attempt_delivery(
    store: DirectStore,
    sender: Sender,
    delivery_id,
    metrics: MetricsRecorder | None = None,
    limiter: ReceiverLimiter | None = None,
    defer_seconds: float = 1.0,
    receiver: str | None = None,
) -> str:
    """Run one attempt of a delivery; the outcome says whether to retry.

    DEFERRED means the receiver already has its share of attempts running: the delivery is
    due again in `defer_seconds`, with no attempt spent. When the task message names the
    receiver, its share is taken before anything else, so a saturated receiver's deliveries
    are put back without touching the database and a burst cannot overshoot the cap.
    """
    lease = None
    if limiter is not None and receiver is not None:
        lease = limiter.acquire(receiver)
        if lease is None:
            return DEFERRED
    outcome = SKIPPED
    try:
        outcome = _attempt(store, sender, delivery_id, metrics, limiter, defer_seconds, lease)
        return outcome
    finally:
        if lease is not None:
            # Nothing claimed (a duplicate message): no request, so no sign of the receiver's
            # speed; only an answer may lift the cap on a receiver not heard from yet.
            limiter.release(receiver, lease, answered=outcome != SKIPPED)


def _attempt(store, sender, delivery_id, metrics, limiter, defer_seconds, lease) -> str:
    started = utcnow()
    claimed = store.claim(uuid.UUID(str(delivery_id)))
    if claimed is None:
        return SKIPPED
    own_lease = None
    if limiter is not None and lease is None:  # a message without its receiver: cap here
        own_lease = limiter.acquire(claimed.url)
        if own_lease is None:
            store.defer(claimed, defer_seconds)
            return DEFERRED
    body = claimed.body.encode()
    headers = request_headers(claimed, int(started.timestamp()), body)
    try:
        result = sender.post(claimed.url, body, headers)
    finally:
        if own_lease is not None:
            limiter.release(claimed.url, own_lease)
    outcome = store.record(claimed, started, result)
    if metrics is not None:
        ended = outcome if outcome in (DELIVERED, FAILED) else None
        metrics.attempt_finished(result.duration_ms, ended)
    if outcome == FAILED:
        log.warning(
            "delivery failed after %d attempts: delivery=%s event=%s target=%s url=%s last=%s",
            claimed.number,
            claimed.id,
            claimed.event_id,
            claimed.target,
            redact_url(claimed.url),
            result.error or f"HTTP {result.status_code}",
        )
    return outcome


def redact_url(url: str) -> str:
    """scheme://host/path: query strings and user info often carry tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
