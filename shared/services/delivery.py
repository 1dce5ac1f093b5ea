"""One delivery attempt: claim the row, POST the stored bytes, record what happened.

The claim and the record go through a store (`shared.store`); this module decides what an
answer means and what comes next.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from shared import signing
from shared.metrics import MetricsRecorder
from shared.models import DeliveryStatus
from shared.sender import USER_AGENT, Sender, SendResult
from shared.settings import Settings
from shared.store.statements import AttemptRecord
from shared.store.stores import Claim, DirectStore
from shared.throttle import ReceiverLimiter
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

DELIVERED, RETRY, FAILED, SKIPPED = "delivered", "retry", "failed", "skipped"
DEFERRED = "deferred"


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


# The delivery's status after an attempt with each outcome.
STATUS_AFTER = {
    DELIVERED: DeliveryStatus.DELIVERED,
    FAILED: DeliveryStatus.FAILED,
    RETRY: DeliveryStatus.PENDING,
}


def outcome_of(settings: Settings, claimed: Claim, result: SendResult) -> str:
    if result.ok:
        return DELIVERED
    return RETRY if claimed.number < settings.max_attempts else FAILED


def record_attempt(
    store: DirectStore, settings: Settings, claimed: Claim, started: datetime, result: SendResult
) -> str:
    """Store the attempt and move the delivery on; SKIPPED when it moved on without us."""
    outcome = outcome_of(settings, claimed, result)
    retry_at = None
    if outcome == RETRY:
        retry_at = utcnow() + timedelta(seconds=settings.webhook_retry_countdown)
    attempt = AttemptRecord(
        claimed.id,
        claimed.round,
        claimed.number,
        started,
        result.duration_ms,
        result.status_code,
        result.error,
        STATUS_AFTER[outcome],
        retry_at,
    )
    # The row moved on without us: cancelled, or the sweep declared this attempt lost.
    return outcome if store.record(attempt) else SKIPPED


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
            store.put_back(claimed, defer_seconds)
            return DEFERRED
    body = claimed.body.encode()
    headers = request_headers(claimed, int(started.timestamp()), body)
    try:
        result = sender.post(claimed.url, body, headers)
    finally:
        if own_lease is not None:
            limiter.release(claimed.url, own_lease)
    outcome = record_attempt(store, store.settings, claimed, started, result)
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
