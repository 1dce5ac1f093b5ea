"""Recovering deliveries whose task message or attempt was lost, and tending the circuits.

Safe when two sweeps run at once: rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL
(SQLite has a single writer, so it needs no row locks).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from shared.models import Delivery, DeliveryStatus
from shared.publishing import Outgoing
from shared.services.health import tend_circuits
from shared.settings import Settings
from shared.store import statements
from shared.store.statements import AttemptRecord
from shared.timeutil import utcnow

LOST_ATTEMPT = "attempt lost: the worker stopped before recording an outcome"
# Messages carry the sender's clock, deliveries the database writer's: allow for a small skew.
QUEUE_CLOCK_SLACK = timedelta(seconds=2)


def sweep(
    session: Session,
    settings: Settings,
    oldest_queued: datetime | None = None,
    batch: int = 1000,
    on_probe=lambda: None,
) -> list[Outgoing]:
    """Deliveries to send again: lost attempts, lost messages, probes and released ones.

    Decided per delivery: a pending delivery is sent again when it was never sent (the broker
    was down), or when it was sent more than `delivery_stuck_after` seconds ago and before the
    oldest message still queued (`oldest_queued`, None when no message is queued), so it is
    in no queue any more: its message died with a worker. One behind a backlog is left alone,
    and a delivery sent again has a new `enqueued_at`, so it is not sent a third time.
    """
    now = utcnow()
    again = _recover_lost_attempts(session, settings, now, batch)
    lost = Delivery.enqueued_at < now - timedelta(seconds=settings.delivery_stuck_after)
    if oldest_queued is not None:
        lost = and_(lost, Delivery.enqueued_at < oldest_queued - QUEUE_CLOCK_SLACK)
    stuck = session.execute(
        select(Delivery.id, Delivery.url, Delivery.webhook_id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
            or_(Delivery.enqueued_at.is_(None), lost),
        )
        .order_by(Delivery.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if stuck:
        statements.mark_enqueued(session.connection(), [row.id for row in stuck], now)
    outgoing = [Outgoing.from_row((row.id, row.url, row.webhook_id)) for row in again + stuck]
    return outgoing + tend_circuits(session, settings, now, on_probe)


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
