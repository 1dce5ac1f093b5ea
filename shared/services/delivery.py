"""One delivery attempt: take the webhook's share, claim the row, send the request the
attempt's rules describe, record what happened.

The claim and the record go through a store (`shared.store.stores`); what the request holds
and what follows its outcome are the rules' (`shared.attempt_rules`).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared import attempt_rules as rules
from shared.attempt_rules import ENDED, Outcome
from shared.metrics import MetricsRecorder
from shared.sender import Sender, SendResult
from shared.services.health import HealthTracker
from shared.settings import Settings
from shared.store.rows import Claim, FinishedAttempt, Outgoing
from shared.store.stores import DirectStore
from shared.throttle import Lease, WebhookLimiter
from shared.timeutil import utcnow
from shared.tracing import NoTracing

if TYPE_CHECKING:
    from shared.tracing_export import ExportedTracing

log = logging.getLogger(__name__)


@dataclass
class TaskResult:
    """What came of a delivery task, and what it leaves for its caller to do."""

    outcome: Outcome
    retry_in: float = 0.0  # RETRY: the seconds the task's retry waits
    to_send: list[Outgoing] = field(default_factory=list)  # deliveries released meanwhile


def record_attempt(
    store: DirectStore, settings: Settings, claim: Claim, started: datetime, result: SendResult
) -> rules.Verdict:
    """Store the attempt and move the delivery on, as the rules say; SKIPPED when the delivery
    moved on without it (cancelled, or the sweep declared this attempt lost)."""
    verdict = rules.after_attempt(settings, claim.number, result.ok, utcnow())
    finished = FinishedAttempt(
        delivery_id=claim.id,
        round=claim.round,
        number=claim.number,
        started_at=started,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
        status=verdict.status,
        retry_at=verdict.retry_at,
        webhook_id=claim.webhook_id,
    )
    if store.record(finished):
        return verdict
    return rules.Verdict(Outcome.SKIPPED, verdict.status)


@dataclass
class Deliverer:
    """What a worker process needs to run attempts: made once per process."""

    store: DirectStore
    sender: Sender
    limiter: WebhookLimiter
    health: HealthTracker
    metrics: MetricsRecorder | None = None
    tracing: NoTracing | ExportedTracing = field(default_factory=NoTracing)
    # Webhooks with deliveries this process parked at a cap, in turn order: whenever an
    # attempt ends, the next of them in turn has one waiting delivery take the freed slot.
    parked: dict = field(default_factory=dict)
    _parked_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def settings(self) -> Settings:
        return self.store.settings

    def run(self, delivery_id, webhook: str | None, host: str | None) -> TaskResult:
        """Run one attempt of a delivery, if it can have one now.

        WAIT means the webhook already has its share of attempts running: the delivery waits
        in the database, with no attempt spent, until a slot frees. The share is taken before
        anything else, so a capped webhook's deliveries never reach the receiver and a burst
        cannot overshoot the cap.
        """
        delivery_id = uuid.UUID(str(delivery_id))
        lease = None
        if webhook is not None and host is not None:
            lease = self.limiter.acquire(webhook, host)
            if lease is None:
                self.store.park_for_cap(delivery_id)
                with self._parked_lock:
                    self.parked.setdefault(webhook, None)
                return TaskResult(Outcome.WAIT)
        done = TaskResult(Outcome.SKIPPED)
        try:
            done = self._attempt(delivery_id, lease)
        finally:
            if lease is not None:
                self.limiter.release(lease)
        if lease is not None:
            done.to_send += self._release_one_parked()
        return done

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
                return freed
            # Nothing of it waits (or its circuit is open): it leaves the turns.

    def _attempt(self, delivery_id: uuid.UUID, lease: Lease | None) -> TaskResult:
        started = utcnow()
        claim = self.store.claim(delivery_id)
        if claim is None:
            return TaskResult(Outcome.SKIPPED)
        trace = self.tracing.attempt(claim)
        request = rules.request_for(claim, self.settings, started, trace.traceparent)
        # The caps judge a webhook by its receiver's time alone, not by how long this
        # process took to claim and record on a busy machine.
        if lease is not None:
            self.limiter.sending(lease)
        result = self.sender.post(request.url, request.body, request.headers)
        trace.finished(result.status_code, result.error, result.duration_ms)
        if lease is not None:
            self.limiter.answered(lease, result.duration_ms / 1000)
        verdict = record_attempt(self.store, self.settings, claim, started, result)
        released = self.health.after_attempt(claim.webhook_id, claim.id, result)
        if claim.record_key is not None and verdict.outcome in ENDED:
            # Its record's next delivery was waiting for this one to end: it goes now (the
            # sweep releases it too, should this process stop first).
            released += self.store.release_next_of_record(claim.webhook_id, claim.record_key)
        if self.metrics is not None:
            ended = verdict.outcome if verdict.outcome in ENDED else None
            self.metrics.attempt_finished(result.duration_ms, ended)
        if verdict.outcome == Outcome.FAILED:
            log.warning(
                "delivery failed after %d attempts: delivery=%s event=%s webhook=%s host=%s "
                "last=%s",
                claim.number,
                claim.id,
                claim.event_id,
                claim.webhook_id,
                urlsplit(claim.url).hostname,
                result.error or f"HTTP {result.status_code}",
            )
        return TaskResult(verdict.outcome, verdict.retry_in, released)
