"""Taking deliveries for an attempt, and taking out of circulation those that cannot have one
now (their webhook is closed, at its cap, or behind an earlier event of the same record).

The claim is committed before the HTTP call, so a duplicate task message finds nothing to
claim, and the attempt count in the database, not Celery's retry counter, decides whether
another attempt is allowed.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

from sqlalchemy import and_, any_, bindparam, case, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from shared.models import (
    Delivery,
    DeliveryStatus,
    Event,
    Target,
    UTCDateTime,
    Webhook,
    WebhookStatus,
)
from shared.store.conditions import (
    BEHIND_RECORD,
    CLAIMABLE,
    DUE,
    RECORD_FREE,
    WEBHOOK_OPEN,
    of_webhook,
)
from shared.store.dialect import CompiledOnce, is_postgres
from shared.store.rows import Claim

# Everything an attempt needs, read by the statement that claims the row; named as Claim's
# fields.
_RETURNING = (
    Delivery.id,
    Delivery.webhook_id,
    Delivery.round,
    Delivery.attempts.label("number"),
    Delivery.event_id,
    Delivery.target,
    Delivery.url,
    select(Event.body).where(Event.id == Delivery.event_id).scalar_subquery().label("body"),
    of_webhook(Webhook.custom_headers).label("custom_headers"),
    of_webhook(Webhook.secret).label("secret"),
    of_webhook(Webhook.previous_secret).label("previous_secret"),
    of_webhook(Webhook.previous_secret_expires_at).label("previous_secret_expires_at"),
    Delivery.record_key,
    of_webhook(Webhook.auth).label("auth"),
    of_webhook(Webhook.tls).label("tls"),
    select(Event.traceparent)
    .where(Event.id == Delivery.event_id)
    .scalar_subquery()
    .label("traceparent"),
)
_CLAIMED = {
    "status": DeliveryStatus.IN_FLIGHT,
    "attempts": Delivery.attempts + 1,
    "lease_until": bindparam("lease_until"),
    "claimed_by": bindparam("worker"),
    "updated_at": bindparam("now"),
}
# Any number of rows in one statement. A row another transaction holds (the sweep re-sending it,
# a duplicate message claimed elsewhere) is skipped rather than waited for: that one is already
# being handled, and two batches never wait on each other's rows (no deadlock).
_PG_CLAIM = CompiledOnce(
    update(Delivery)
    .where(
        Delivery.id.in_(
            select(Delivery.id)
            .where(
                Delivery.id == any_(bindparam("ids", type_=ARRAY(Delivery.id.type))),
                *CLAIMABLE,
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(**_CLAIMED)
    .returning(*_RETURNING)
)
# SQLite has a single writer: one row at a time, in the caller's transaction.
_SQLITE_CLAIM = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"), *CLAIMABLE)
    .values(**_CLAIMED)
    .returning(*_RETURNING)
)


def claim(conn: Connection, ids: list[uuid.UUID], params: dict) -> list[Claim]:
    """Take the due deliveries among `ids` for one attempt each. A duplicate id is claimed once.

    `params`: max_attempts, due_by, lease_until, now and worker (the claiming process).
    """
    if is_postgres(conn):
        rows = _PG_CLAIM(conn, {**params, "ids": list(set(ids))})
    else:
        rows = [
            row
            for delivery_id in dict.fromkeys(ids)
            for row in conn.execute(_SQLITE_CLAIM, {**params, "delivery_id": delivery_id})
        ]
    return [_claim_of(row) for row in rows]


# A row held by another statement is skipped by the claim; but a release of waiting deliveries
# (`store.waiting`) also holds, for the moment its statement runs, rows it looked at and found
# no longer waiting: one of them can be a delivery released a moment before for this very
# claim. Left there, it would stay pending with its message spent. Those still claimable are
# claimed again after a pause: 2 ms, then 10, then 50 (such a statement takes milliseconds).
_HELD_ROW_PAUSES = (0.002, 0.01, 0.05)
_PG_STILL_CLAIMABLE = CompiledOnce(
    select(Delivery.id).where(
        Delivery.id == any_(bindparam("ids", type_=ARRAY(Delivery.id.type))), *CLAIMABLE
    )
)


def claim_held(conn: Connection, ids: list[uuid.UUID], params: dict) -> list[Claim]:
    """Of these deliveries the claim did not take, those still claimable (their row was held
    for a moment by another statement), taken now. Run after the blocked ones are parked."""
    if not is_postgres(conn):
        return []  # one writer, no row locks: nothing was skipped
    taken: list[Claim] = []
    for pause in _HELD_ROW_PAUSES:
        held = [row.id for row in _PG_STILL_CLAIMABLE(conn, {**params, "ids": ids})]
        if not held:
            break
        time.sleep(pause)
        taken += claim(conn, held, params)
        ids = [delivery_id for delivery_id in held if delivery_id not in {c.id for c in taken}]
    return taken


def _claim_of(row) -> Claim:
    values = dict(row._mapping)
    values["target"] = Target(values["target"])
    return Claim(**values)


_WEBHOOK_STATUS = of_webhook(Webhook.status)
# Due deliveries whose webhook does not take attempts now: a deleted webhook's are cancelled, a
# disabled one's fail, and the others wait in the database (no message anywhere) until their
# webhook recovers or its Retry-After passes, or (record ordering) until the delivery before
# them of the same record ends.
_PARK_BLOCKED = (
    update(Delivery)
    .where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        *DUE,
        ~and_(WEBHOOK_OPEN, RECORD_FREE),
    )
    .values(
        status=case(
            (Delivery.webhook_id.is_(None), DeliveryStatus.CANCELLED),
            (_WEBHOOK_STATUS == WebhookStatus.DISABLED, DeliveryStatus.FAILED),
            else_=DeliveryStatus.WAITING,
        ),
        last_error=case(
            (Delivery.webhook_id.is_(None), "webhook deleted"),
            (_WEBHOOK_STATUS == WebhookStatus.DISABLED, "webhook disabled"),
            (_WEBHOOK_STATUS == WebhookStatus.FAILING, "waiting: the webhook is failing"),
            (WEBHOOK_OPEN, BEHIND_RECORD),
            else_="waiting: the receiver asked to retry later (Retry-After)",
        ),
        enqueued_at=None,
        updated_at=bindparam("now"),
    )
)


def park_blocked(conn: Connection, ids: list[uuid.UUID], params: dict) -> None:
    """Of these due deliveries, take out of circulation those whose webhook is closed."""
    conn.execute(_PARK_BLOCKED, {**params, "ids": ids})


_PARK = (
    update(Delivery)
    .where(
        Delivery.id.in_(bindparam("delivery_ids", expanding=True)),
        Delivery.status == DeliveryStatus.PENDING,
    )
    .values(
        status=DeliveryStatus.WAITING,
        last_error=bindparam("reason"),
        next_attempt_at=func.coalesce(
            bindparam("due", type_=UTCDateTime), Delivery.next_attempt_at
        ),
        enqueued_at=None,
        updated_at=bindparam("now"),
    )
)


def park(
    conn: Connection,
    delivery_ids: list[uuid.UUID],
    reason: str,
    now: datetime,
    due: datetime | None,
) -> None:
    """Pending deliveries that cannot have their attempt now wait in the database, with no
    message anywhere, until `due` if given."""
    params = {"delivery_ids": delivery_ids, "reason": f"waiting: {reason}", "now": now, "due": due}
    conn.execute(_PARK, params)
