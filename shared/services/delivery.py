"""One delivery attempt: claim the row, POST the stored bytes, record what happened.

The claim and the record go through a store (`shared.store`); this module decides what an
answer means and what comes next.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from shared import signing
from shared.metrics import MetricsRecorder
from shared.models import DeliveryStatus
from shared.publishing import Outgoing
from shared.sender import USER_AGENT, Sender, SendResult
from shared.services.health import HealthTracker
from shared.settings import Settings
from shared.store.statements import AttemptRecord
from shared.store.stores import Claim, DirectStore
from shared.throttle import Lease, WebhookLimiter
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
        claimed.webhook_id,
    )
    # The row moved on without us: cancelled, or the sweep declared this attempt lost.
    return outcome if store.record(attempt) else SKIPPED


@dataclass
class Deliverer:
    """What a worker process needs to run attempts: made once per process."""

    store: DirectStore
    sender: Sender
    limiter: WebhookLimiter
    health: HealthTracker
    metrics: MetricsRecorder | None = None
    # Webhooks with deliveries this process parked at a cap, in turn order: whenever an
    # attempt ends, the next of them in turn has one waiting delivery take the freed slot.
    parked: dict = field(default_factory=dict)
    _parked_lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, delivery_id, webhook: str | None, host: str | None) -> Attempted:
        """Run one attempt of a delivery; the outcome says whether to retry.

        DEFERRED means the webhook already has its share of attempts running: the delivery
        waits in the database, with no attempt spent, until a slot frees. The share is taken
        before anything else, so a capped webhook's deliveries never reach the receiver and a
        burst cannot overshoot the cap.
        """
        delivery_id = uuid.UUID(str(delivery_id))
        lease = None
        if webhook is not None and host is not None:
            lease = self.limiter.acquire(webhook, host)
            if lease is None:
                self.store.park_for_cap(delivery_id)
                with self._parked_lock:
                    self.parked.setdefault(webhook, None)
                return Attempted(DEFERRED)
        attempted = Attempted(SKIPPED)
        try:
            attempted = self._attempt(delivery_id, lease)
        finally:
            if lease is not None:
                self.limiter.release(lease)
        if lease is not None:
            attempted.to_send += self._release_one_parked()
        return attempted

    def _release_one_parked(self) -> list[Outgoing]:
        """A slot just freed: one delivery parked at a cap takes it, the webhooks taking turns
        (the slot may have been the slow share's, which every slow webhook waits for)."""
        while True:
            with self._parked_lock:
                # Only a webhook the caps would now let through: releasing one still at its
                # cap would only send its delivery round to be parked again.
                webhook = next((key for key in self.parked if self.limiter.has_room(key)), None)
                if webhook is None:
                    return []
                del self.parked[webhook]
            freed = self.store.release_waiting(uuid.UUID(webhook), 1)
            if freed:
                with self._parked_lock:
                    self.parked.setdefault(webhook, None)  # to the back of the line
                return [Outgoing.from_row(row) for row in freed]
            # Nothing of it waits (or its circuit is open): it leaves the turns.

    def _attempt(self, delivery_id: uuid.UUID, lease: Lease | None) -> Attempted:
        started = utcnow()
        claimed = self.store.claim(delivery_id)
        if claimed is None:
            return Attempted(SKIPPED)
        body = claimed.body.encode()
        headers = request_headers(claimed, int(started.timestamp()), body)
        # The caps judge a webhook by its receiver's time alone, not by how long this
        # process took to claim and record on a busy machine.
        if lease is not None:
            self.limiter.sending(lease)
        result = self.sender.post(claimed.url, body, headers)
        if lease is not None:
            self.limiter.answered(lease, result.duration_ms / 1000)
        outcome = record_attempt(self.store, self.store.settings, claimed, started, result)
        released = self.health.after_attempt(claimed.webhook_id, claimed.id, result)
        if claimed.record_key is not None and outcome in (DELIVERED, FAILED):
            # Its record's next delivery was waiting for this one to end: it goes now (the
            # sweep releases it too, should this process stop first).
            freed = self.store.release_next_of_record(claimed.webhook_id, claimed.record_key)
            released = released + [Outgoing.from_row(row) for row in freed]
        if self.metrics is not None:
            ended = outcome if outcome in (DELIVERED, FAILED) else None
            self.metrics.attempt_finished(result.duration_ms, ended)
        if outcome == FAILED:
            log.warning(
                "delivery failed after %d attempts: delivery=%s event=%s webhook=%s host=%s "
                "last=%s",
                claimed.number,
                claimed.id,
                claimed.event_id,
                claimed.webhook_id,
                urlsplit(claimed.url).hostname,
                result.error or f"HTTP {result.status_code}",
            )
        return Attempted(outcome, released)


@dataclass
class Attempted:
    outcome: str
    to_send: list = field(default_factory=list)  # deliveries released meanwhile
