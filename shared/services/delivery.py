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

from sqlalchemy import insert, select, update
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


def claim(conn: Connection, settings: Settings, delivery_id: uuid.UUID, now: datetime):
    """Take the delivery for one attempt, and read all the attempt needs, in one statement."""
    row = conn.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status == "pending",
            Delivery.attempts < settings.max_attempts,
            Delivery.next_attempt_at <= now + DUE_SLACK,
        )
        .values(
            status="in_flight",
            attempts=Delivery.attempts + 1,
            lease_until=now + timedelta(seconds=settings.lease_seconds),
            updated_at=now,
        )
        .returning(
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
    ).one_or_none()
    if row is None:
        return None
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


def record(
    conn: Connection, settings: Settings, claimed: Claim, started: datetime, result: SendResult
) -> str:
    """Store the attempt and move the delivery on, in one statement on PostgreSQL."""
    now = utcnow()
    attempt = insert(Attempt).values(
        delivery_id=claimed.id,
        round=claimed.round,
        number=claimed.number,
        started_at=started,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
    )
    if result.ok:
        outcome, values = DELIVERED, {"status": "delivered"}
    elif claimed.number < settings.max_attempts:
        next_at = now + timedelta(seconds=settings.webhook_retry_countdown)
        outcome = RETRY
        values = {"status": "pending", "next_attempt_at": next_at, "enqueued_at": now}
    else:
        outcome, values = FAILED, {"status": "failed"}
    move_on = _still_claimed(claimed).values(
        **values,
        lease_until=None,
        updated_at=now,
        last_status_code=result.status_code,
        last_error=result.error,
    )
    if conn.dialect.name == "postgresql":
        changed = conn.execute(move_on.add_cte(attempt.cte("attempt"))).rowcount
    else:
        conn.execute(attempt)
        changed = conn.execute(move_on).rowcount
    # The row moved on without us (cancelled, or the sweep declared this attempt lost).
    return outcome if changed else SKIPPED


def _still_claimed(claimed: Claim):
    """An UPDATE of the claimed row that matches only while this attempt still owns it."""
    return update(Delivery).where(
        Delivery.id == claimed.id,
        Delivery.status == "in_flight",
        Delivery.round == claimed.round,
        Delivery.attempts == claimed.number,
    )


def defer(conn: Connection, claimed: Claim, seconds: float) -> None:
    """Give the claim back without spending an attempt; the delivery is due again later."""
    now = utcnow()
    conn.execute(
        _still_claimed(claimed).values(
            status="pending",
            attempts=Delivery.attempts - 1,
            lease_until=None,
            updated_at=now,
            next_attempt_at=now + timedelta(seconds=seconds),
            enqueued_at=now,
        )
    )


def attempt_delivery(
    db: Database,
    sender: Sender,
    settings: Settings,
    delivery_id,
    metrics: MetricsRecorder | None = None,
    limiter: ReceiverLimiter | None = None,
    defer_seconds: float = 1.0,
) -> str:
    """Run one attempt of a delivery; the outcome says whether to retry.

    DEFERRED means the receiver already has its share of attempts running: the delivery is
    due again in `defer_seconds`, with no attempt spent.
    """
    started = utcnow()
    with db.statements() as conn:
        claimed = claim(conn, settings, uuid.UUID(str(delivery_id)), started)
    if claimed is None:
        return SKIPPED
    lease = limiter.acquire(claimed.url) if limiter is not None else None
    if limiter is not None and lease is None:
        with db.statements() as conn:
            defer(conn, claimed, defer_seconds)
        return DEFERRED
    body = claimed.body.encode()
    headers = request_headers(claimed, int(started.timestamp()), body)
    try:
        result = sender.post(claimed.url, body, headers)
    finally:
        if lease is not None:
            limiter.release(claimed.url, lease)
    with db.statements() as conn:
        outcome = record(conn, settings, claimed, started, result)
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
