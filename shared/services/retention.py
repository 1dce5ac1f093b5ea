"""Retention: events whose deliveries have all finished are deleted after RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from shared.models import UNFINISHED, Attempt, Delivery, Event
from shared.settings import Settings
from shared.timeutil import utcnow


def purge(session: Session, settings: Settings) -> int:
    """Delete events older than the retention period whose deliveries are all finished."""
    if settings.retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    unfinished = exists().where(Delivery.event_id == Event.id, Delivery.status.in_(UNFINISHED))
    old = select(Event.id).where(Event.created_at < cutoff, ~unfinished).limit(10_000)
    ids = session.scalars(old).all()
    if not ids:
        return 0
    delivery_ids = select(Delivery.id).where(Delivery.event_id.in_(ids))
    session.execute(delete(Attempt).where(Attempt.delivery_id.in_(delivery_ids)))
    session.execute(delete(Delivery).where(Delivery.event_id.in_(ids)))
    session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)
