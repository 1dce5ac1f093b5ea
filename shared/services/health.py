"""A webhook's health, kept on its row: what each attempt's answer says, the circuit that opens
after consecutive failures, probes, Retry-After, recovery and disabling.

The circuit is per webhook row (each wallet has its own row of the global webhook). While it
is open (`failing`) its deliveries wait in the database, spending no attempt, and probes go out
(`store.waiting.start_probe` says which delivery; a signed `WebhookPing` when none waits). It
opens only when no attempt has succeeded for two retry countdowns (`attempt_rules.
opens_circuit`), so a receiver that accepts retries keeps it closed; the first success closes
it, and the waiting deliveries go as the webhook's slots take them. What an answer means is the
attempt's rules' (`attempt_rules.signal_of`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from shared import attempt_rules as rules
from shared.attempt_rules import Signal
from shared.db import Database
from shared.models import Delivery, DeliveryStatus, Webhook, WebhookStatus
from shared.sender import SendResult
from shared.services import operations
from shared.settings import Settings
from shared.store import waiting
from shared.store.rows import Outgoing
from shared.timeutil import utcnow

log = logging.getLogger(__name__)

# A process writes a success of a healthy webhook at most this often (every delivery would
# otherwise update the webhook's row).
SUCCESS_WRITE_INTERVAL = 1.0
# Row locks taken here are FOR NO KEY UPDATE: publishing's key-share locks do not wait for them.
NO_KEY_UPDATE = {"key_share": True}


@dataclass
class Noted:
    """What noting an attempt leaves to do."""

    to_send: list[Outgoing] = field(default_factory=list)  # operational events
    recovered: bool = False  # its circuit closed: its waiting deliveries may go


class HealthTracker:
    """Writes what attempts say about their webhooks; one per worker process."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._healthy_written: dict[uuid.UUID, float] = {}  # webhook -> monotonic time
        self._writing_success: set[uuid.UUID] = set()  # webhooks a thread writes a success of

    def after_attempt(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, result: SendResult
    ) -> Noted:
        signal = rules.signal_of(result.status_code)
        if signal == Signal.UP and not self._writes_success(webhook_id):
            # Failures other processes counted since then were ended by the statement that
            # recorded this success (`shared.store.attempts.record`): nothing more to write.
            return Noted()
        try:
            return self._note(webhook_id, delivery_id, result, signal)
        finally:
            if signal == Signal.UP:
                with self._lock:
                    self._writing_success.discard(webhook_id)

    def _writes_success(self, webhook_id: uuid.UUID) -> bool:
        """Whether this success is to be written: not if one was written lately, nor while
        another thread of this process writes one (a webhook's attempts that end together
        would otherwise queue for its row's lock, one after the other)."""
        with self._lock:
            written = self._healthy_written.get(webhook_id)
            if written is not None and time.monotonic() - written < SUCCESS_WRITE_INTERVAL:
                return False
            if webhook_id in self._writing_success:
                return False
            self._writing_success.add(webhook_id)
            return True

    def _note(self, webhook_id, delivery_id, result: SendResult, signal: Signal) -> Noted:
        noted = Noted()
        with self.db.transaction() as session:
            webhook = session.get(
                Webhook, webhook_id, with_for_update=NO_KEY_UPDATE, populate_existing=True
            )
            if webhook is None:
                return noted
            now = utcnow()
            before = webhook.status
            if signal == Signal.UP:
                noted.recovered = note_success(webhook, now)
            else:
                note_failure(session, self.settings, webhook, delivery_id, result, now)
                noted.to_send += self._if_delivery_failed(session, delivery_id, now)
            if webhook.status != before:
                noted.to_send += operations.webhook_changed(session, self.settings, webhook, now)
            healthy = webhook.status == WebhookStatus.ACTIVE and not webhook.consecutive_failures
        with self._lock:
            if healthy:
                self._healthy_written[webhook_id] = time.monotonic()
            else:
                self._healthy_written.pop(webhook_id, None)
            if len(self._healthy_written) > 10_000:
                self._healthy_written.clear()  # a crude bound; it refills itself
        return noted

    def _if_delivery_failed(self, session: Session, delivery_id: uuid.UUID, now) -> list:
        """DeliveryFailed for the operator, when this attempt was the delivery's last."""
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.FAILED:
            return []
        return operations.delivery_failed(session, self.settings, delivery, now)


def note_success(webhook: Webhook, now: datetime) -> bool:
    """A 2xx: the run of failures ends; True when this closed the webhook's circuit."""
    webhook.consecutive_failures = 0
    webhook.last_success_at = now
    if webhook.status != WebhookStatus.FAILING:
        return False
    webhook.status = WebhookStatus.ACTIVE
    webhook.status_since = now
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    webhook.probe_interval = None
    log.info("webhook recovered: webhook=%s", webhook.id)
    return True


def note_failure(
    session: Session,
    settings: Settings,
    webhook: Webhook,
    delivery_id: uuid.UUID,
    result: SendResult,
    now: datetime,
) -> None:
    signal = rules.signal_of(result.status_code)
    until = rules.hold_until(settings, result.status_code, result.retry_after, now)
    if until is not None and (webhook.hold_until is None or webhook.hold_until < until):
        webhook.hold_until = until
    if signal == Signal.GONE and webhook.status != WebhookStatus.DISABLED:
        disable(session, webhook, now, "the receiver answered 410 Gone")
        return
    if signal != Signal.DOWN:
        return  # this delivery's failure alone: the receiver answered
    webhook.consecutive_failures += 1
    webhook.last_failure_at = now
    if webhook.status == WebhookStatus.ACTIVE:
        if rules.opens_circuit(
            settings, webhook.consecutive_failures, webhook.last_success_at, now
        ):
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
    """The sweep's part: disable what failed too long, and start the due probes of failing
    webhooks. Returns the deliveries to send."""
    outgoing = []
    failing = session.scalars(
        select(Webhook)
        .where(Webhook.status == WebhookStatus.FAILING, _to_tend(settings, now))
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    conn = session.connection()
    live_probes = _live_probes(session, [w.probe_delivery_id for w in failing])
    for webhook in failing:
        since = webhook.status_since or now
        if now - since >= timedelta(seconds=settings.disable_after):
            disable(session, webhook, now, "failing for WEBHOOK_DISABLE_AFTER")
            outgoing += operations.webhook_changed(session, settings, webhook, now)
            continue
        if webhook.probe_delivery_id is not None and webhook.probe_delivery_id not in live_probes:
            # Its probe will not be attempted (parked at a cap, or failed when its worker died):
            # pick another now rather than wait for an outcome that never comes.
            webhook.probe_delivery_id = None
            webhook.next_probe_at = now
        held = webhook.hold_until is not None and webhook.hold_until > now
        due = webhook.next_probe_at is not None and webhook.next_probe_at <= now
        if webhook.probe_delivery_id is None and due and not held:
            probe = waiting.start_probe(conn, webhook.id, settings.max_attempts, now)
            if probe is None and not waiting.has_unfinished(conn, webhook.id):
                # Nothing is owed to it: a ping tells whether it is back before it can be
                # disabled.
                probe = operations.ping(session, settings, webhook, now)
            if probe is not None:
                webhook.probe_delivery_id = probe.id
                webhook.next_probe_at = None
                on_probe()
                outgoing.append(probe)
    session.flush()  # the webhooks disabled just now count below
    for webhook_id in waiting.disabled_with_waiting(conn):
        # Parked at a cap after it was disabled: recorded, never attempted.
        waiting.fail_waiting(conn, webhook_id, "webhook disabled", now)
    return outgoing


def _to_tend(settings: Settings, now: datetime):
    """A failing webhook the sweep has something to do for: failing for long enough to be
    disabled, due a probe and not held by a Retry-After, or with a probe that will not be
    attempted. The others (most of them, most of the time: their probe is running, or not yet
    due) are not read, so that a sweep's cost follows what it does, not how many webhooks fail."""
    probe_live = exists().where(
        Delivery.id == Webhook.probe_delivery_id,
        Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)),
    )
    return or_(
        Webhook.status_since <= now - timedelta(seconds=settings.disable_after),
        and_(
            Webhook.probe_delivery_id.is_(None),
            Webhook.next_probe_at <= now,
            or_(Webhook.hold_until.is_(None), Webhook.hold_until <= now),
        ),
        and_(Webhook.probe_delivery_id.is_not(None), ~probe_live),
    )


def _live_probes(session: Session, probe_ids: list) -> set:
    """Of these probes, those that will still be attempted (pending or in flight): one
    statement for every failing webhook, not one each."""
    probe_ids = [probe_id for probe_id in probe_ids if probe_id is not None]
    if not probe_ids:
        return set()
    return set(
        session.scalars(
            select(Delivery.id).where(
                Delivery.id.in_(probe_ids),
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT)),
            )
        )
    )


def disable(session: Session, webhook: Webhook, now: datetime, reason: str) -> None:
    webhook.status = WebhookStatus.DISABLED
    webhook.status_since = now
    webhook.status_reason = reason
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    failed = waiting.fail_waiting(session.connection(), webhook.id, "webhook disabled", now)
    log.warning("webhook disabled (%s): webhook=%s failed=%d", reason, webhook.id, failed)


def enable(webhook: Webhook, now: datetime) -> None:
    """A disabled (or failing) webhook takes attempts again, from a clean slate."""
    webhook.status = WebhookStatus.ACTIVE
    webhook.status_since = now
    webhook.status_reason = None
    webhook.consecutive_failures = 0
    webhook.probe_delivery_id = None
    webhook.next_probe_at = None
    webhook.probe_interval = None
    webhook.hold_until = None
