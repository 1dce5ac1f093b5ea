"""Deliveries that wait in the database with no message anywhere (status `waiting`): released
when their webhook can take them, one taken as a failing webhook's probe, or failed with a
disabled webhook."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.engine import Connection

from shared.models import UNFINISHED, Delivery, DeliveryStatus, Webhook, WebhookStatus
from shared.store.conditions import RECORD_FREE, TO_SEND, WEBHOOK_OPEN
from shared.store.dialect import CompiledOnce, is_postgres
from shared.store.rows import Outgoing

PENDING, WAITING = DeliveryStatus.PENDING, DeliveryStatus.WAITING
_SENT = TO_SEND


class _Release:
    """An UPDATE that sets the chosen deliveries pending again and returns what their messages
    carry. Each runs after attempts end, on the hot path of capped and ordered webhooks: on
    PostgreSQL it is compiled once and handed to the driver as text. (Parameters named after a
    column take `b_`: SQLAlchemy keeps those names for the SET clause.)"""

    def __init__(self, chosen, *conditions):
        self.statement = (
            update(Delivery)
            .where(Delivery.id.in_(chosen.scalar_subquery()), *conditions)
            .values(status=PENDING, enqueued_at=bindparam("now"), updated_at=bindparam("now"))
            .returning(*_SENT)
        )
        self._compiled = CompiledOnce(self.statement)

    def __call__(self, conn: Connection, params: dict) -> list[Outgoing]:
        if is_postgres(conn):
            rows = self._compiled(conn, params)
        else:
            rows = conn.execute(self.statement, params)
        return [Outgoing.of(row) for row in rows]


# Up to `limit` of a webhook's waiting deliveries, oldest first, while it takes attempts. A
# delivery behind an earlier one of its record stays waiting (the end of that one releases it).
_RELEASE_WAITING = _Release(
    select(Delivery.id)
    .where(
        Delivery.webhook_id == bindparam("b_webhook_id"),
        Delivery.status == WAITING,
        Delivery.next_attempt_at <= bindparam("now"),
        RECORD_FREE,
    )
    .order_by(Delivery.created_at, Delivery.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True),
    exists().where(
        Webhook.id == bindparam("b_webhook_id"),
        Webhook.status == WebhookStatus.ACTIVE,
        or_(Webhook.hold_until.is_(None), Webhook.hold_until <= bindparam("now")),
    ),
)
# A record's next delivery, if nothing earlier of the record is unfinished. Pending ones count
# too: one refused by its claim a moment ago may not be parked yet. The row lock waits (no SKIP
# LOCKED) so that a park running now is seen, not skipped.
_RELEASE_NEXT_OF_RECORD = _Release(
    select(Delivery.id)
    .where(
        Delivery.webhook_id == bindparam("b_webhook_id"),
        Delivery.record_key == bindparam("b_record_key"),
        # Each status its own comparison: the text is fixed once compiled.
        or_(Delivery.status == WAITING, Delivery.status == PENDING),
        Delivery.next_attempt_at <= bindparam("now"),
        RECORD_FREE,
    )
    .order_by(Delivery.seq)
    .limit(1)
    .with_for_update(),
    WEBHOOK_OPEN,
)


def release_waiting(
    conn: Connection, webhook_id: uuid.UUID, limit: int, now: datetime
) -> list[Outgoing]:
    """Up to `limit` of the webhook's waiting deliveries go back to pending."""
    return _RELEASE_WAITING(conn, {"b_webhook_id": webhook_id, "limit": limit, "now": now})


def release_next_of_record(
    conn: Connection, webhook_id: uuid.UUID, record_key: str, now: datetime
) -> list[Outgoing]:
    """A delivery of an ordered record ended: the record's next one, if nothing earlier is
    unfinished, goes now."""
    params = {"b_webhook_id": webhook_id, "b_record_key": record_key, "now": now}
    return _RELEASE_NEXT_OF_RECORD(conn, params)


def start_probe(
    conn: Connection, webhook_id: uuid.UUID, max_attempts: int, now: datetime
) -> Outgoing | None:
    """Take the failing webhook's next probe, or None when nothing waits: the next attempt of
    a waiting delivery (the oldest of its kind) that

    1. has been tried and keeps another attempt after this one: a receiver that refuses first
       attempts and accepts retries is found out by the first probe, and no delivery is
       failed by it;
    2. else has not been tried;
    3. else has its last attempt left.
    """
    preference = case(
        (and_(Delivery.attempts > 0, Delivery.attempts < max_attempts - 1), 0),
        (Delivery.attempts == 0, 1),
        else_=2,
    )
    # A pending delivery that is due counts as waiting: its claim would only park it (its
    # message may also have been lost with a worker, as retries waiting out their countdown).
    owed = or_(
        Delivery.status == WAITING,
        and_(Delivery.status == PENDING, Delivery.next_attempt_at <= now),
    )
    candidate = conn.execute(
        select(Delivery.id)
        .where(
            Delivery.webhook_id == webhook_id,
            owed,
            Delivery.attempts < max_attempts,
            RECORD_FREE,
        )
        .order_by(preference, Delivery.created_at, Delivery.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar()
    if candidate is None:
        return None
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


def disabled_with_waiting(conn: Connection) -> list[uuid.UUID]:
    """The disabled webhooks that have deliveries waiting."""
    waiting = select(Delivery.webhook_id).where(Delivery.status == WAITING)
    disabled = select(Webhook.id).where(
        Webhook.status == WebhookStatus.DISABLED, Webhook.id.in_(waiting)
    )
    return list(conn.scalars(disabled))


def webhooks_to_restart(conn: Connection, now: datetime) -> list:
    """Webhooks that take attempts and have deliveries waiting that are due: (id, rate limit)
    of each. If nothing of theirs runs, no ending attempt will hand them a slot."""
    rows = conn.execute(
        select(Webhook.id, func.coalesce(Webhook.rate_limit, 0).label("rate_limit")).where(
            Webhook.status == WebhookStatus.ACTIVE,
            or_(Webhook.hold_until.is_(None), Webhook.hold_until <= now),
            exists().where(
                Delivery.webhook_id == Webhook.id,
                Delivery.status == WAITING,
                Delivery.next_attempt_at <= now,
            ),
        )
    )
    return rows.all()


def has_unfinished(conn: Connection, webhook_id: uuid.UUID) -> bool:
    """Whether the webhook is owed any attempt or outcome."""
    owed = select(Delivery.id).where(
        Delivery.webhook_id == webhook_id, Delivery.status.in_(UNFINISHED)
    )
    return conn.execute(owed.limit(1)).first() is not None
