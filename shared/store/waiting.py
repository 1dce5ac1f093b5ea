"""Deliveries that wait in the database with no message anywhere (status `waiting`): released
when their webhook can take them, one taken as a failing webhook's probe, or failed with a
disabled webhook."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import exists, or_, select, update
from sqlalchemy.engine import Connection

from shared.models import Delivery, DeliveryStatus, Webhook, WebhookStatus
from shared.store.conditions import RECORD_FREE, WEBHOOK_OPEN
from shared.store.rows import Outgoing

PENDING, WAITING = DeliveryStatus.PENDING, DeliveryStatus.WAITING
_SENT = (Delivery.id, Delivery.url, Delivery.webhook_id)


def release_waiting(
    conn: Connection, webhook_id: uuid.UUID, limit: int, now: datetime
) -> list[Outgoing]:
    """Up to `limit` of the webhook's waiting deliveries, oldest first, back to pending while it
    takes attempts. A delivery behind an earlier one of its record stays waiting (the end of
    that one releases it)."""
    oldest = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id == webhook_id,
            Delivery.status == WAITING,
            Delivery.next_attempt_at <= now,
            RECORD_FREE,
        )
        .order_by(Delivery.created_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    open_webhook = exists().where(
        Webhook.id == webhook_id,
        Webhook.status == WebhookStatus.ACTIVE,
        or_(Webhook.hold_until.is_(None), Webhook.hold_until <= now),
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(oldest), open_webhook)
        .values(status=PENDING, enqueued_at=now, updated_at=now)
        .returning(*_SENT)
    )
    return [Outgoing.of(row) for row in conn.execute(statement)]


def release_next_of_record(
    conn: Connection, webhook_id: uuid.UUID, record_key: str, now: datetime
) -> list[Outgoing]:
    """A delivery of an ordered record ended: the record's next one, if nothing earlier is
    unfinished, goes now.

    Pending ones count too: one refused by its claim a moment ago may not be parked yet. The
    row lock waits (no SKIP LOCKED) so that a park running now is seen, not skipped.
    """
    head = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id == webhook_id,
            Delivery.record_key == record_key,
            Delivery.status.in_((WAITING, PENDING)),
            Delivery.next_attempt_at <= now,
            RECORD_FREE,
        )
        .order_by(Delivery.created_at, Delivery.id)
        .limit(1)
        .with_for_update()
        .scalar_subquery()
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(head), WEBHOOK_OPEN)
        .values(status=PENDING, enqueued_at=now, updated_at=now)
        .returning(*_SENT)
    )
    return [Outgoing.of(row) for row in conn.execute(statement, {"now": now})]


def start_probe(conn: Connection, webhook_id: uuid.UUID, now: datetime) -> Outgoing | None:
    """The next attempt of the waiting delivery with the most attempts left (the oldest among
    those) becomes the failing webhook's probe, or None when nothing waits."""
    candidate = conn.execute(
        select(Delivery.id)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == WAITING, RECORD_FREE)
        .order_by(Delivery.attempts, Delivery.created_at, Delivery.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar()
    if candidate is None:
        return None
    conn.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(probe_delivery_id=candidate, next_probe_at=None)
    )
    row = conn.execute(
        update(Delivery)
        .where(Delivery.id == candidate)
        .values(status=PENDING, enqueued_at=now, updated_at=now, next_attempt_at=now)
        .returning(*_SENT)
    ).one()
    return Outgoing.of(row)


def fail_waiting(conn: Connection, webhook_id: uuid.UUID, reason: str, now: datetime) -> int:
    """A disabled webhook's waiting deliveries end failed with `reason`."""
    return conn.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_((WAITING, PENDING)))
        .values(status=DeliveryStatus.FAILED, last_error=reason, updated_at=now)
    ).rowcount


def webhooks_with_waiting(conn: Connection) -> list[uuid.UUID]:
    """The webhooks that have deliveries waiting."""
    waiting = select(Delivery.webhook_id).where(Delivery.status == WAITING).distinct()
    return list(conn.scalars(waiting))
