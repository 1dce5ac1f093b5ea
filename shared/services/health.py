"""A webhook's health, kept on its row: what each attempt's outcome says, the circuit that opens
after consecutive failures, probes, Retry-After, recovery and disabling.

The circuit is per webhook (the global webhook has a row of its own). While it is open
(`failing`), the claim statement lets only the probe through; every other delivery of the
webhook waits in the database, spending no attempt and holding no message anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import attempt_rules as rules
from shared.db import Database
from shared.models import Delivery, DeliveryStatus, Webhook, WebhookStatus
from shared.sender import SendResult
from shared.services import operations
from shared.settings import Settings
from shared.store import waiting
from shared.store.rows import Outgoing
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

# Waiting deliveries released per sweep right after a recovery; doubled each sweep while the
# receiver keeps answering, up to RELEASE_PACE_MAX.
RELEASE_PACE_START = 20
RELEASE_PACE_MAX = 5000
# A process writes a success of a healthy webhook at most this often (every delivery would
# otherwise update the webhook's row).
SUCCESS_WRITE_INTERVAL = 1.0


class HealthTracker:
    """Writes what attempts say about their webhooks; one per worker process."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._healthy_written: dict[uuid.UUID, float] = {}  # webhook -> monotonic time

    def after_attempt(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, result: SendResult
    ) -> list[Outgoing]:
        """Note the outcome; on recovery, the first waiting deliveries released (to send)."""
        if result.ok and self._recently_healthy(webhook_id):
            # Failures other processes counted since then were ended by the statement that
            # recorded this success (`shared.store.attempts.record`): nothing more to write.
            return []
        with self.db.transaction() as session:
            webhook = session.get(Webhook, webhook_id, with_for_update=True, populate_existing=True)
            if webhook is None:
                return []
            now = utcnow()
            before = webhook.status
            if result.ok:
                to_send = note_success(session, self.settings, webhook, now)
            else:
                note_failure(self.settings, webhook, delivery_id, result, now)
                to_send = self._if_delivery_failed(session, delivery_id, now)
            if webhook.status != before:
                to_send += operations.webhook_changed(session, self.settings, webhook, now)
            healthy = webhook.status == WebhookStatus.ACTIVE and not webhook.consecutive_failures
        with self._lock:
            if healthy:
                self._healthy_written[webhook_id] = time.monotonic()
            else:
                self._healthy_written.pop(webhook_id, None)
            if len(self._healthy_written) > 10_000:
                self._healthy_written.clear()  # a crude bound; it refills itself
        return to_send

    def _if_delivery_failed(self, session: Session, delivery_id: uuid.UUID, now) -> list:
        """DeliveryFailed for the operator, when this attempt was the delivery's last."""
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.FAILED:
            return []
        return operations.delivery_failed(session, self.settings, delivery, now)

    def _recently_healthy(self, webhook_id: uuid.UUID) -> bool:
        with self._lock:
            written = self._healthy_written.get(webhook_id)
        return written is not None and time.monotonic() - written < SUCCESS_WRITE_INTERVAL


def note_success(
    session: Session, settings: Settings, webhook: Webhook, now: datetime
) -> list[Outgoing]:
    webhook.consecutive_failures = 0
    webhook.last_success_at = now
    if webhook.status != WebhookStatus.FAILING:
        return []
    webhook.status = WebhookStatus.ACTIVE
    webhook.status_since = now
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    webhook.probe_interval = None
    webhook.release_pace = RELEASE_PACE_START
    session.flush()
    log.info("webhook recovered: webhook=%s", webhook.id)
    return waiting.release_waiting(session.connection(), webhook.id, RELEASE_PACE_START, now)


def note_failure(
    settings: Settings, webhook: Webhook, delivery_id: uuid.UUID, result: SendResult, now
) -> None:
    webhook.consecutive_failures += 1
    webhook.last_failure_at = now
    until = rules.hold_until(settings, result.retry_after, now)
    if until is not None and (webhook.hold_until is None or webhook.hold_until < until):
        webhook.hold_until = until
    if webhook.status == WebhookStatus.ACTIVE:
        if webhook.consecutive_failures >= settings.circuit_failures:
            webhook.status = WebhookStatus.FAILING
            webhook.status_since = now
            webhook.probe_interval = settings.probe_interval
            webhook.next_probe_at = now + timedelta(seconds=settings.probe_interval)
            log.warning(
                "webhook failing after %d consecutive failed attempts: webhook=%s",
                webhook.consecutive_failures,
                webhook.id,
            )
    elif webhook.status == WebhookStatus.FAILING and webhook.probe_delivery_id == delivery_id:
        webhook.probe_interval = rules.next_probe_interval(settings, webhook.probe_interval)
        webhook.next_probe_at = now + timedelta(seconds=webhook.probe_interval)
        webhook.probe_delivery_id = None


def tend_circuits(
    session: Session, settings: Settings, now: datetime, on_probe=lambda: None
) -> list[Outgoing]:
    """The sweep's part: disable what failed too long, start due probes, release waiting
    deliveries of open webhooks at their growing pace. Returns the deliveries to send."""
    outgoing = []
    failing = session.scalars(
        select(Webhook)
        .where(Webhook.status == WebhookStatus.FAILING)
        .with_for_update(skip_locked=True)
    ).all()
    conn = session.connection()
    for webhook in failing:
        since = webhook.status_since or now
        if now - since >= timedelta(seconds=settings.disable_after):
            disable(session, webhook, now)
            outgoing += operations.webhook_changed(session, settings, webhook, now)
            continue
        if webhook.probe_delivery_id is not None and _probe_is_stale(session, webhook):
            # Its probe will not be attempted (parked at a cap, or failed when its worker died):
            # pick another now rather than wait for an outcome that never comes.
            webhook.probe_delivery_id = None
            webhook.next_probe_at = now
        held = webhook.hold_until is not None and webhook.hold_until > now
        due = webhook.next_probe_at is not None and webhook.next_probe_at <= now
        if webhook.probe_delivery_id is None and due and not held:
            probe = waiting.start_probe(conn, webhook.id, now)
            if probe is not None:
                on_probe()
                outgoing.append(probe)
    for webhook_id in waiting.webhooks_with_waiting(conn):
        webhook = session.get(Webhook, webhook_id)
        if webhook is not None and webhook.status == WebhookStatus.DISABLED:
            # Parked at a cap after it was disabled: recorded, never attempted.
            waiting.fail_waiting(conn, webhook_id, "webhook disabled", now)
            continue
        if webhook is None or webhook.status != WebhookStatus.ACTIVE:
            continue
        pace = max(webhook.release_pace or 0, RELEASE_PACE_START)
        released = waiting.release_waiting(conn, webhook_id, pace, now)
        if released:
            webhook.release_pace = min(pace * 2, RELEASE_PACE_MAX)
            outgoing += released
    return outgoing


def _probe_is_stale(session: Session, webhook: Webhook) -> bool:
    status = session.scalar(select(Delivery.status).where(Delivery.id == webhook.probe_delivery_id))
    return status not in (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)


def disable(session: Session, webhook: Webhook, now: datetime) -> None:
    webhook.status = WebhookStatus.DISABLED
    webhook.status_since = now
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    failed = waiting.fail_waiting(session.connection(), webhook.id, "webhook disabled", now)
    log.warning("webhook disabled after failing too long: webhook=%s failed=%d", webhook.id, failed)


def enable(webhook: Webhook, now: datetime) -> None:
    """A disabled (or failing) webhook takes attempts again, from a clean slate."""
    webhook.status = WebhookStatus.ACTIVE
    webhook.status_since = now
    webhook.consecutive_failures = 0
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    webhook.probe_interval = None
    webhook.hold_until = None
    webhook.release_pace = RELEASE_PACE_START
