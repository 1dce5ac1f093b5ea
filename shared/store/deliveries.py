"""A delivery's life outside the hot path: whether its task was sent, rounds of redelivery,
cancellation with its webhook or a move to its new URL, and what the sweep finds stuck or
lost."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.engine import Connection

from shared.models import FINISHED, UNFINISHED, Delivery, DeliveryStatus, Target, Webhook
from shared.store.rows import Outgoing


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


def redirect_unfinished(conn: Connection, webhook_id: uuid.UUID, url: str, now: datetime) -> None:
    """The webhook's URL changed: what it still owes goes to the new one."""
    conn.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_(UNFINISHED))
        .values(url=url, updated_at=now)
    )


# A new round goes to the webhook's URL of now (it may have changed since the last round); the
# global webhook's row holds no URL: its deliveries keep theirs.
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
        .values(
            status=DeliveryStatus.PENDING,
            round=Delivery.round + 1,
            attempts=0,
            next_attempt_at=now,
            enqueued_at=now,
            lease_until=None,
            updated_at=now,
            url=_CURRENT_URL,
        )
    )
    return result.rowcount == 1


def later_of_record(conn: Connection, delivery: Delivery) -> bool:
    """Whether the webhook has a delivery of a later event of the same ordered record."""
    if delivery.record_key is None:
        return False
    later = select(Delivery.id).where(
        Delivery.webhook_id == delivery.webhook_id,
        Delivery.record_key == delivery.record_key,
        Delivery.created_at > delivery.created_at,
        Delivery.id != delivery.id,
    )
    return conn.execute(later.limit(1)).first() is not None


def take_unsent(
    conn: Connection, lost: ColumnElement[bool], now: datetime, limit: int
) -> list[Outgoing]:
    """Due pending deliveries never sent, or whose message is `lost`, marked sent again now.

    Rows another sweep holds are skipped (SKIP LOCKED; SQLite has one writer anyway)."""
    rows = conn.execute(
        select(Delivery.id, Delivery.url, Delivery.webhook_id)
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


def take_expired_leases(conn: Connection, now: datetime, limit: int) -> list:
    """Deliveries still in flight after their attempt's lease ran out (its worker died), with
    what recording the lost attempt needs: id, round, attempts, lease_until, url, webhook_id."""
    return conn.execute(
        select(
            Delivery.id,
            Delivery.round,
            Delivery.attempts,
            Delivery.lease_until,
            Delivery.url,
            Delivery.webhook_id,
        )
        .where(Delivery.status == DeliveryStatus.IN_FLIGHT, Delivery.lease_until < now)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
