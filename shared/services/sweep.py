"""Recovering deliveries whose task message or attempt was lost, and tending the circuits.

Safe when two sweeps run at once: rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL
(SQLite has a single writer, so it needs no row locks).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_
from sqlalchemy.orm import Session

from shared import attempt_rules as rules
from shared.attempt_rules import Outcome
from shared.models import Delivery
from shared.services.health import tend_circuits
from shared.settings import Settings
from shared.store import attempts, deliveries
from shared.store.rows import FinishedAttempt, Outgoing
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
    conn = session.connection()
    again = _recover_lost_attempts(conn, settings, now, batch)
    lost = Delivery.enqueued_at < now - timedelta(seconds=settings.delivery_stuck_after)
    if oldest_queued is not None:
        lost = and_(lost, Delivery.enqueued_at < oldest_queued - QUEUE_CLOCK_SLACK)
    stuck = deliveries.take_unsent(conn, lost, now, batch)
    return again + stuck + tend_circuits(session, settings, now, on_probe)


def _recover_lost_attempts(conn, settings: Settings, now: datetime, batch: int) -> list:
    """An attempt still in flight after its lease died with its worker: it counts as failed,
    and its delivery is sent again if its round has an attempt left."""
    again, finished = [], []
    for row in deliveries.take_expired_leases(conn, now, batch):
        verdict = rules.after_lost_attempt(settings, row.attempts, now)
        finished.append(
            FinishedAttempt(
                delivery_id=row.id,
                round=row.round,
                number=row.attempts,
                started_at=row.lease_until - timedelta(seconds=settings.lease_seconds),
                duration_ms=settings.lease_seconds * 1000,
                status_code=None,
                error=LOST_ATTEMPT,
                status=verdict.status,
                retry_at=verdict.retry_at,
            )
        )
        if verdict.outcome == Outcome.RETRY:
            again.append(Outgoing.of(row))
    if finished:
        attempts.record(conn, finished, now)
    return again
