"""Recovering deliveries whose task message was lost, and purging old events.

Safe when two sweeps run at once: rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL
(SQLite has a single writer, so it needs no row locks).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from shared.models import Attempt, Delivery, Event
from shared.services.events import Outgoing
from shared.settings import Settings
from shared.throttle import receiver_key
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
    ids = _recover_lost_attempts(session, settings, now, batch)
    stuck_before = now - timedelta(seconds=settings.delivery_stuck_after)
    unsent = Delivery.enqueued_at.is_(None)
    if not messages_waiting:
        unsent = or_(unsent, Delivery.enqueued_at < stuck_before)
    stuck = session.execute(
        select(Delivery.id, Delivery.url)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now, unsent)
        .order_by(Delivery.next_attempt_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    if stuck:
        stuck_ids = [delivery_id for delivery_id, _ in stuck]
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(stuck_ids))
            .values(enqueued_at=now, updated_at=now)
        )
    return ids + [Outgoing(delivery_id, receiver_key(url)) for delivery_id, url in stuck]


def _recover_lost_attempts(session: Session, settings: Settings, now, batch: int):
    """An attempt still in flight after its lease died with its worker: it counts as failed."""
    lost = session.execute(
        select(Delivery.id, Delivery.round, Delivery.attempts, Delivery.lease_until, Delivery.url)
        .where(Delivery.status == "in_flight", Delivery.lease_until < now)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    retry = []
    for delivery_id, round_, number, lease_until, url in lost:
        session.execute(
            insert(Attempt).values(
                delivery_id=delivery_id,
                round=round_,
                number=number,
                started_at=lease_until - timedelta(seconds=settings.lease_seconds),
                duration_ms=settings.lease_seconds * 1000,
                status_code=None,
                error=LOST_ATTEMPT,
            )
        )
        again = number < settings.max_attempts
        values = {"status": "pending", "next_attempt_at": now, "enqueued_at": now}
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(
                **(values if again else {"status": "failed"}),
                lease_until=None,
                updated_at=now,
                last_status_code=None,
                last_error=LOST_ATTEMPT,
            )
        )
        if again:
            retry.append(Outgoing(delivery_id, receiver_key(url)))
    return retry


def purge(session: Session, settings: Settings) -> int:
    """Delete events older than the retention period whose deliveries are all finished."""
    if settings.retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    unfinished = exists().where(
        Delivery.event_id == Event.id, Delivery.status.in_(("pending", "in_flight"))
    )
    old = select(Event.id).where(Event.created_at < cutoff, ~unfinished).limit(10_000)
    ids = session.scalars(old).all()
    if not ids:
        return 0
    delivery_ids = select(Delivery.id).where(Delivery.event_id.in_(ids))
    session.execute(delete(Attempt).where(Attempt.delivery_id.in_(delivery_ids)))
    session.execute(delete(Delivery).where(Delivery.event_id.in_(ids)))
    session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)
