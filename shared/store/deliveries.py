"""A delivery's life outside the hot path: whether its task was sent, rounds of redelivery,
cancellation with its webhook or a move to its new URL, and what the sweep finds stuck or
lost."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.engine import Connection

from shared.models import FINISHED, UNFINISHED, Delivery, DeliveryStatus, Target, Webhook
from shared.store.conditions import TO_SEND
from shared.store.rows import Outgoing


def redirect_unfinished(conn: Connection, webhook_id: uuid.UUID, url: str, now: datetime) -> None:
    """The webhook's URL changed: what it still owes goes to the new one."""
    conn.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_(UNFINISHED))
        .values(url=url, updated_at=now)
    )


# A new round goes to the webhook's URL of now (it may have changed since the last round); the
# global webhook's rows hold no URL: their deliveries keep theirs.
_CURRENT_URL = case(
    (
        Delivery.target == Target.WALLET,
        func.coalesce(
            select(Webhook.url).where(Webhook.id == Delivery.webhook_id).scalar_subquery(),
            Delivery.url,
        ),
    ),
    else_=Delivery.url,
)


def _new_round(now: datetime) -> dict:
    """A finished delivery's next round: pending its first attempt again, sent now, to its
    webhook's URL of now."""
    return {
        Delivery.status: DeliveryStatus.PENDING,
        Delivery.round: Delivery.round + 1,
        Delivery.attempts: 0,
        Delivery.lease_until: None,
        Delivery.next_attempt_at: now,
        Delivery.enqueued_at: now,
        Delivery.updated_at: now,
        Delivery.url: _CURRENT_URL,
    }


def leave_for_sweep(conn: Connection, ids: list[uuid.UUID]) -> None:
    """Mark deliveries as having no task message: the next sweep sends them."""
    conn.execute(update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=None))


def mark_enqueued(conn: Connection, ids: list[uuid.UUID], now: datetime) -> None:
    conn.execute(
        update(Delivery).where(Delivery.id.in_(ids)).values(enqueued_at=now, updated_at=now)
    )


def cancel_for_webhook(conn: Connection, webhook_id: uuid.UUID, now: datetime) -> None:
    """The unfinished deliveries of a webhook being deleted end cancelled."""
    conn.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_(UNFINISHED))
        .values(status=DeliveryStatus.CANCELLED, updated_at=now, last_error="webhook deleted")
    )


def start_round(
    conn: Connection, delivery_id: uuid.UUID, expected_round: int, now: datetime
) -> bool:
    """A fresh round of attempts for a finished delivery (redelivery); False if another came first.

    Conditional on the delivery still being finished in `expected_round`: of concurrent
    redeliveries of one delivery exactly one starts a round.
    """
    result = conn.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.round == expected_round,
            Delivery.status.in_(FINISHED),
        )
        .values(_new_round(now))
    )
    return result.rowcount == 1


def start_rounds(
    conn: Connection, webhook_ids: list[uuid.UUID], since: datetime, limit: int, now: datetime
) -> list[Outgoing]:
    """A fresh round for up to `limit` of these webhooks' failed deliveries created since
    `since`, oldest first; rows another transaction holds are left for the next call."""
    failed = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id.in_(webhook_ids),
            Delivery.status == DeliveryStatus.FAILED,
            Delivery.created_at >= since,
        )
        .order_by(Delivery.created_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = conn.execute(
        update(Delivery).where(Delivery.id.in_(failed)).values(_new_round(now)).returning(*TO_SEND)
    )
    return [Outgoing.of(row) for row in rows]


def detach_from_webhook(conn: Connection, webhook_id: uuid.UUID, limit: int, now: datetime) -> int:
    """Up to `limit` of a webhook's deliveries let go of it (as its deletion would), the
    unfinished ones cancelled."""
    some = (
        select(Delivery.id)
        .where(Delivery.webhook_id == webhook_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    unfinished = Delivery.status.in_(UNFINISHED)
    return conn.execute(
        update(Delivery)
        .where(Delivery.id.in_(some))
        .values(
            webhook_id=None,
            status=case((unfinished, DeliveryStatus.CANCELLED), else_=Delivery.status),
            last_error=case((unfinished, "webhook deleted"), else_=Delivery.last_error),
            updated_at=now,
        )
    ).rowcount


def later_of_record(conn: Connection, delivery: Delivery) -> bool:
    """Whether the webhook has a delivery of a later event of the same ordered record."""
    if delivery.record_key is None:
        return False
    later = select(Delivery.id).where(
        Delivery.webhook_id == delivery.webhook_id,
        Delivery.record_key == delivery.record_key,
        Delivery.seq > delivery.seq,
    )
    return conn.execute(later.limit(1)).first() is not None


def take_unsent(
    conn: Connection, lost: ColumnElement[bool], now: datetime, limit: int
) -> list[Outgoing]:
    """Due pending deliveries never sent, or whose message is `lost`, marked sent again now.

    Rows another sweep holds are skipped (SKIP LOCKED; SQLite has one writer anyway)."""
    rows = conn.execute(
        select(*TO_SEND)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
            Delivery.enqueued_at.is_(None) | lost,
        )
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        mark_enqueued(conn, [row.id for row in rows], now)
    return [Outgoing.of(row) for row in rows]


def take_pending(conn: Connection, ids: list[uuid.UUID], now: datetime) -> list[Outgoing]:
    """Of these deliveries, those still pending and due, marked sent again now."""
    rows = conn.execute(
        select(*TO_SEND)
        .where(
            Delivery.id.in_(ids),
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
        )
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        mark_enqueued(conn, [row.id for row in rows], now)
    return [Outgoing.of(row) for row in rows]


def claimers_in_flight(conn: Connection, claimed_before: datetime, lease: float) -> list[str]:
    """The worker processes running attempts claimed before `claimed_before`."""
    return list(
        conn.scalars(
            select(Delivery.claimed_by)
            .where(
                Delivery.status == DeliveryStatus.IN_FLIGHT,
                Delivery.claimed_by.is_not(None),
                Delivery.lease_until < claimed_before + timedelta(seconds=lease),
            )
            .distinct()
        )
    )


def take_lost_attempts(
    conn: Connection,
    now: datetime,
    gone: set[str],
    claimed_before: datetime,
    settings,
    limit: int,
) -> list:
    """Deliveries in flight whose attempt will never be recorded: their lease ran out, or the
    worker that claimed them (before `claimed_before`) is `gone`. With what recording the lost
    attempt needs: id, round, attempts, lease_until, and the columns of a message."""
    lost = Delivery.lease_until < now
    if gone:
        lost = or_(
            lost,
            and_(
                Delivery.claimed_by.in_(gone),
                Delivery.lease_until < claimed_before + timedelta(seconds=settings.lease_seconds),
            ),
        )
    return conn.execute(
        select(Delivery.round, Delivery.attempts, Delivery.lease_until, *TO_SEND)
        .where(Delivery.status == DeliveryStatus.IN_FLIGHT, lost)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


NO_ATTEMPT_LEFT = "failed: no attempt left in its round (WEBHOOK_MAX_RETRIES was lowered)"


def fail_without_attempts(conn: Connection, max_attempts: int, now: datetime) -> int:
    """Deliveries owed an attempt they can no longer have (the allowed number was lowered
    since they were tried) end failed, saying why."""
    return conn.execute(
        update(Delivery)
        .where(
            Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.WAITING)),
            Delivery.attempts >= max_attempts,
        )
        .values(status=DeliveryStatus.FAILED, last_error=NO_ATTEMPT_LEFT, updated_at=now)
    ).rowcount
