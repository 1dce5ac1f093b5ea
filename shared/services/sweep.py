"""The periodic sweep: what no message or worker will do by itself any more.

- attempts lost with their worker (its heartbeat stopped, or its lease ran out) count as
  failed, and their deliveries go again if their round has an attempt left;
- messages lost (a worker killed with messages fetched ahead or retries waiting, Redis emptied,
  the broker down when they were sent) are sent again: judged per message, from its entry in
  the outstanding messages (`shared.coordination.outstanding`), and, as a last resort, from
  the delivery's row;
- the circuits are tended (`health.tend_circuits`), deliveries left without an attempt by a
  lowered WEBHOOK_MAX_RETRIES end failed, and webhooks whose waiting deliveries have nothing
  running to hand them a slot are started again.

Safe when two sweeps run at once: rows are taken with FOR UPDATE SKIP LOCKED on PostgreSQL
(SQLite has a single writer, so it needs no row locks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_
from sqlalchemy.orm import Session

from shared import attempt_rules as rules
from shared.attempt_rules import Outcome
from shared.coordination.liveness import ALIVE_SECONDS
from shared.coordination.outstanding import Entry
from shared.models import BROKER_EPOCH, Delivery, SystemValue
from shared.services.health import tend_circuits
from shared.settings import Settings
from shared.store import attempts, deliveries, waiting
from shared.store.rows import FinishedAttempt, Outgoing
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
LOST_ATTEMPT = "attempt lost: the worker stopped before recording an outcome"
# Messages carry the sender's clock, deliveries the database writer's: allow for a small skew.
QUEUE_CLOCK_SLACK = timedelta(seconds=2)


@dataclass
class Broker:
    """What the sweep knows of the broker and the workers, read from Redis beforehand."""

    # Per queue, when its oldest message was sent (epoch seconds); None: unknown.
    oldest_queued: dict[str, float] | None = None
    epoch: str | None = None  # Redis's (`coordination.liveness.epoch`); None: unknown
    overdue: list[Entry] = field(default_factory=list)  # outstanding well after they were due
    alive: Callable[[Iterable[str]], set[str]] = lambda ids: set(ids)
    # {(delivery id, round, number): status} of the answers kept for these attempts.
    receipts: Callable[[list], dict] = lambda attempts: {}


@dataclass
class Swept:
    emptied: bool = False  # Redis lost its data since the last sweep
    to_send: list[Outgoing] = field(default_factory=list)
    forget: list[Entry] = field(default_factory=list)  # outstanding entries of no message
    restart: list = field(default_factory=list)  # webhooks to start again (active, waiting)


def sweep(
    session: Session, settings: Settings, broker: Broker, batch: int = 1000, on_probe=None
) -> Swept:
    now = utcnow()
    conn = session.connection()
    swept = Swept(emptied=_redis_emptied(session, broker))
    swept.to_send += _recover_lost_attempts(conn, settings, broker, now, batch)
    swept.to_send += _lost_messages(conn, settings, broker, now, batch, swept)
    swept.to_send += tend_circuits(session, settings, now, on_probe or (lambda: None))
    deliveries.fail_without_attempts(conn, settings.max_attempts, now)
    swept.restart = waiting.webhooks_to_restart(conn, now)
    return swept


def _recover_lost_attempts(conn, settings: Settings, broker: Broker, now, batch: int) -> list:
    """An attempt whose worker is gone counts as failed, and its delivery is sent again if its
    round has an attempt left. A worker is gone when its lease ran out, or when its heartbeat
    stopped and the attempt began longer ago than a heartbeat lives."""
    started_before = now - timedelta(seconds=ALIVE_SECONDS)
    claimers = deliveries.claimers_in_flight(conn, started_before, settings.lease_seconds)
    gone = set(claimers) - broker.alive(claimers)
    again, finished = [], []
    lost = deliveries.take_lost_attempts(conn, now, gone, started_before, settings, batch)
    answered = broker.receipts([(row.id, row.round, row.attempts) for row in lost])
    for row in lost:
        started = row.lease_until - timedelta(seconds=settings.lease_seconds)
        key = (row.id, row.round, row.attempts)
        if key in answered:
            # The receiver answered before the worker died: that answer is the outcome.
            status_code, error = answered[key], None
            ok = status_code is not None and 200 <= status_code < 300
            verdict = rules.after_attempt(settings, row.attempts, ok, now)
            if status_code is None:
                error = "no answer (recorded from the attempt's receipt)"
        else:
            status_code, error = None, LOST_ATTEMPT
            verdict = rules.after_lost_attempt(settings, row.attempts, now)
        finished.append(
            FinishedAttempt(
                delivery_id=row.id,
                round=row.round,
                number=row.attempts,
                started_at=started,
                duration_ms=max(0.0, (now - started).total_seconds() * 1000),
                status_code=status_code,
                error=error,
                status=verdict.status,
                retry_at=verdict.retry_at,
            )
        )
        if verdict.outcome == Outcome.RETRY:
            again.append(Outgoing.of(row))
    if finished:
        attempts.record(conn, finished, now)
    return again


def _redis_emptied(session: Session, broker: Broker) -> bool:
    """Whether Redis lost its data since the last sweep (its epoch changed)."""
    if broker.epoch is None:
        return False
    remembered = session.get(SystemValue, BROKER_EPOCH, with_for_update={"key_share": True})
    if remembered is None or remembered.value == broker.epoch:
        return False
    emptied = remembered.value != ""  # "" (bootstrap): nothing seen yet
    remembered.value = broker.epoch
    if emptied:
        log.warning("Redis lost its data: every pending delivery is sent again")
    return emptied


def _lost_messages(conn, settings: Settings, broker: Broker, now, batch: int, swept) -> list:
    """Pending deliveries whose message is no longer anywhere, sent again now."""
    if swept.emptied:
        # Every queue and every entry went with Redis's data.
        return deliveries.take_unsent(conn, Delivery.enqueued_at <= now, now, batch)
    judged = []
    for entry in broker.overdue:
        oldest = (broker.oldest_queued or {}).get(entry.queue)
        if oldest is not None and oldest <= entry.due:
            continue  # its queue still holds messages sent before it: it may be among them
        judged.append(entry)
    ids = [entry.delivery_id for entry in judged]
    resent = deliveries.take_pending(conn, ids, now) if ids else []
    swept.forget += judged  # each is sent again (with a new entry), or is no longer pending
    # The last resort: never sent (the broker was down), or sent long ago and before every
    # message still queued.
    lost = Delivery.enqueued_at < now - timedelta(seconds=settings.delivery_stuck_after)
    if broker.oldest_queued is None:
        pass  # unknown: old enough is lost enough
    elif broker.oldest_queued:
        oldest = datetime.fromtimestamp(min(broker.oldest_queued.values()), UTC)
        lost = and_(lost, Delivery.enqueued_at < oldest - QUEUE_CLOCK_SLACK)
    return resent + deliveries.take_unsent(conn, lost, now, batch)
