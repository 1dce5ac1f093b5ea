"""Recovering deliveries whose task message or attempt was lost, and tending the circuits.

Safe when two sweeps run at once: rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL
(SQLite has a single writer, so it needs no row locks).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.models import Delivery, DeliveryStatus
from shared.publishing import Outgoing
from shared.services.health import tend_circuits
from shared.settings import Settings
from shared.store import statements
from shared.store.statements import AttemptRecord
from shared.timeutil import utcnow

LOST_ATTEMPT = "attempt lost: the worker stopped before recording an outcome"


def sweep(
    session: Session, settings: Settings, batch: int = 1000, messages_waiting: bool = False
) -> list[Outgoing]:
    """Deliveries to enqueue again: lost attempts and messages that never arrived.

    A delivery whose message was sent but has not run after `delivery_stuck_after` seconds is
    taken as lost only while no delivery messages wait in the broker (`messages_waiting`):
    behind a backlog (workers down for a deploy, a burst) it is most likely still queued, and
    sending it again would only queue a duplicate, every sweep until the backlog clears.
    Deliveries never sent (the broker was down) and lost attempts are handled either way.
    """
    now = utcnow()
    again = _recover_lost_attempts(session, settings, now, batch)
    stuck_before = now - timedelta(seconds=settings.delivery_stuck_after)
    unsent = Delivery.enqueued_at.is_(None)
    if not messages_waiting:
        unsent = or_(unsent, Delivery.enqueued_at < stuck_before)
    stuck = session.execute(
        select(Delivery.id, Delivery.url, Delivery.webhook_id)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now, unsent)
        .order_by(Delivery.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if stuck:
        statements.mark_enqueued(session.connection(), [row.id for row in stuck], now)
    outgoing = [Outgoing.from_row((row.id, row.url, row.webhook_id)) for row in again + stuck]
    return outgoing + tend_circuits(session, settings, now)


def _recover_lost_attempts(session: Session, settings: Settings, now, batch: int) -> list:
    """An attempt still in flight after its lease died with its worker: it counts as failed."""
    lost = session.execute(
        select(
            Delivery.id,
            Delivery.round,
            Delivery.attempts,
            Delivery.lease_until,
            Delivery.url,
            Delivery.webhook_id,
        )
        .where(Delivery.status == DeliveryStatus.IN_FLIGHT, Delivery.lease_until < now)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    records = [
        AttemptRecord(
            delivery_id=row.id,
            round=row.round,
            number=row.attempts,
            started_at=row.lease_until - timedelta(seconds=settings.lease_seconds),
            duration_ms=settings.lease_seconds * 1000,
            status_code=None,
            error=LOST_ATTEMPT,
            status=_status_after_lost(settings, row.attempts),
            retry_at=now if row.attempts < settings.max_attempts else None,
        )
        for row in lost
    ]
    if records:
        statements.record(session.connection(), records, now)
    return [row for row in lost if row.attempts < settings.max_attempts]


def _status_after_lost(settings: Settings, number: int) -> DeliveryStatus:
    if number < settings.max_attempts:
        return DeliveryStatus.PENDING
    return DeliveryStatus.FAILED
