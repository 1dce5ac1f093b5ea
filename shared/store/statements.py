"""Every statement that writes a delivery or an attempt row, once per dialect.

PostgreSQL does each step of the hot path (publish, claim, record) in one statement, atomic by
itself, so it runs on an autocommit connection with no BEGIN and COMMIT around it. SQLite
cannot, so it does the same in steps inside the caller's transaction. `_Postgres` and `_Sqlite`
below are the only place that knows the difference; everything else calls the functions at the
end of this module with a connection.

The statements are built once: building and hashing them on every call costs more than
running them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Text,
    Uuid,
    and_,
    any_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from shared.models import (
    GLOBAL_WEBHOOK_ID,
    UNFINISHED,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    UTCDateTime,
    Webhook,
    WebhookStatus,
)

PENDING, WAITING = DeliveryStatus.PENDING, DeliveryStatus.WAITING
IN_FLIGHT = DeliveryStatus.IN_FLIGHT


@dataclass(frozen=True)
class NewEvent:
    id: uuid.UUID
    wallet_id: uuid.UUID
    type: str
    body: str
    created_at: datetime
    notified: bool  # False: stored and sent to no one
    enqueued: bool  # the caller sends the tasks at once; otherwise the sweep does
    global_url: str | None


@dataclass(frozen=True)
class AttemptRecord:
    """One finished attempt, and where it leaves its delivery."""

    delivery_id: uuid.UUID
    round: int
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    status: DeliveryStatus  # the delivery's status after this attempt
    retry_at: datetime | None  # when status is pending: the next attempt's time


def _from_webhook(column):
    return select(column).where(Webhook.id == Delivery.webhook_id).scalar_subquery()


# Everything an attempt needs, read by the statement that claims the row.
CLAIM_RETURNING = (
    Delivery.id,
    Delivery.webhook_id,
    Delivery.round,
    Delivery.attempts,
    Delivery.event_id,
    Delivery.target,
    Delivery.url,
    select(Event.body).where(Event.id == Delivery.event_id).scalar_subquery(),
    _from_webhook(Webhook.custom_headers),
    _from_webhook(Webhook.secret),
    _from_webhook(Webhook.previous_secret),
    _from_webhook(Webhook.previous_secret_expires_at),
)
_CLAIMED = {
    "status": IN_FLIGHT,
    "attempts": Delivery.attempts + 1,
    "lease_until": bindparam("lease_until"),
    "updated_at": bindparam("now"),
}
# The delivery's webhook takes attempts: it exists (a deleted one's deliveries are never sent),
# its circuit is closed and no Retry-After holds it; or this delivery is its probe.
_WEBHOOK_OPEN = exists().where(
    Webhook.id == Delivery.webhook_id,
    or_(
        and_(
            Webhook.status == WebhookStatus.ACTIVE,
            or_(Webhook.hold_until.is_(None), Webhook.hold_until <= bindparam("now")),
        ),
        and_(Webhook.probe_delivery_id == Delivery.id, Webhook.status == WebhookStatus.FAILING),
    ),
)
_DUE = (
    Delivery.status == PENDING,
    Delivery.attempts < bindparam("max_attempts"),
    Delivery.next_attempt_at <= bindparam("due_by"),
)
_CLAIMABLE = (*_DUE, _WEBHOOK_OPEN)
# An UPDATE of a claimed row that matches only while the given attempt still owns it.
_STILL_CLAIMED = update(Delivery).where(
    Delivery.id == bindparam("b_delivery_id"),
    Delivery.status == IN_FLIGHT,
    Delivery.round == bindparam("b_round"),
    Delivery.attempts == bindparam("b_number"),
)


class _Postgres:
    # The event, its targets and their deliveries in one statement. The wallet's webhooks keep
    # the event-type filter (no list, or a list naming the type).
    PUBLISH = (
        text(
            """
        WITH event AS (
            INSERT INTO events (id, wallet_id, type, body, created_at)
            VALUES (:id, :wallet_id, :type, :body, :now)
            RETURNING id
        ), targets AS (
            SELECT w.id AS webhook_id, 'wallet' AS target, w.url
            FROM webhooks w
            WHERE :notified AND w.wallet_id = :wallet_id
              AND (w.event_types IS NULL OR json_typeof(w.event_types) = 'null'
                   OR jsonb_exists(w.event_types::jsonb, :type))
            UNION ALL
            SELECT CAST(:global_id AS uuid), 'global', CAST(:global_url AS text)
            WHERE :notified AND CAST(:global_url AS text) IS NOT NULL
        )
        INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                                attempts, next_attempt_at, enqueued_at, created_at, updated_at)
        SELECT gen_random_uuid(), event.id, :wallet_id, targets.webhook_id, targets.target,
               targets.url, 'pending', 1, 0, :now, :enqueued_at, :now, :now
        FROM event, targets
        RETURNING id, url, webhook_id
        """
        )
        .bindparams(
            bindparam("id", type_=Uuid),
            bindparam("wallet_id", type_=Uuid),
            bindparam("type", type_=Text),
            bindparam("body", type_=Text),
            bindparam("now", type_=UTCDateTime),
            bindparam("enqueued_at", type_=UTCDateTime),
            bindparam("notified", type_=Boolean),
            bindparam("global_url", type_=Text),
            bindparam("global_id", type_=Uuid),
        )
        .columns(id=Uuid, url=Text, webhook_id=Uuid)
    )
    # Any number of rows in one statement. A row another transaction holds (the sweep re-sending
    # it, a duplicate message claimed elsewhere) is skipped rather than waited for: that one is
    # already being handled, and two batches never wait on each other's rows (no deadlock).
    CLAIM = (
        update(Delivery)
        .where(
            Delivery.id.in_(
                select(Delivery.id)
                .where(
                    Delivery.id == any_(bindparam("ids", type_=ARRAY(Delivery.id.type))),
                    *_CLAIMABLE,
                )
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
        )
        .values(**_CLAIMED)
        .returning(*CLAIM_RETURNING)
    )
    # One attempt row per outcome, each delivery moved on only while that attempt still owns
    # it. Rows come in as parallel arrays: one statement text whatever the batch size, so the
    # server plans the same statement every time.
    RECORD = (
        text(
            """
        WITH outcome AS (
            SELECT * FROM unnest(
                CAST(:ids AS uuid[]), CAST(:rounds AS integer[]), CAST(:numbers AS integer[]),
                CAST(:started AS timestamptz[]), CAST(:durations AS double precision[]),
                CAST(:codes AS integer[]), CAST(:errors AS text[]), CAST(:statuses AS text[]),
                CAST(:retry_at AS timestamptz[])
            ) AS t(id, round, number, started_at, duration_ms, status_code, error, status,
                   retry_at)
        ), attempt AS (
            INSERT INTO attempts (delivery_id, round, number, started_at, duration_ms,
                                  status_code, error)
            SELECT id, round, number, started_at, duration_ms, status_code, error FROM outcome
        )
        UPDATE deliveries SET
            status = outcome.status,
            lease_until = NULL,
            updated_at = :now,
            last_status_code = outcome.status_code,
            last_error = outcome.error,
            next_attempt_at = COALESCE(outcome.retry_at, deliveries.next_attempt_at),
            enqueued_at = CASE WHEN outcome.retry_at IS NULL THEN deliveries.enqueued_at
                               ELSE :now END
        FROM outcome
        WHERE deliveries.id = outcome.id AND deliveries.status = 'in_flight'
          AND deliveries.round = outcome.round AND deliveries.attempts = outcome.number
        RETURNING deliveries.id
        """
        )
        .bindparams(bindparam("now", type_=UTCDateTime))
        .columns(id=Uuid)
    )

    def publish(self, conn: Connection, event: NewEvent) -> list[tuple]:
        params = {
            "id": event.id,
            "wallet_id": event.wallet_id,
            "type": event.type,
            "body": event.body,
            "now": event.created_at,
            "enqueued_at": event.created_at if event.enqueued else None,
            "notified": event.notified,
            "global_url": event.global_url,
            "global_id": GLOBAL_WEBHOOK_ID,
        }
        return [tuple(row) for row in conn.execute(self.PUBLISH, params)]

    def claim(self, conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
        return conn.execute(self.CLAIM, {**params, "ids": list(set(ids))}).all()

    def record(self, conn: Connection, records: list[AttemptRecord], now: datetime) -> set:
        params = {
            "ids": [str(r.delivery_id) for r in records],
            "rounds": [r.round for r in records],
            "numbers": [r.number for r in records],
            "started": [r.started_at for r in records],
            "durations": [r.duration_ms for r in records],
            "codes": [r.status_code for r in records],
            "errors": [r.error for r in records],
            "statuses": [str(r.status) for r in records],
            "retry_at": [r.retry_at for r in records],
            "now": now,
        }
        return {row[0] for row in conn.execute(self.RECORD, params)}


class _Sqlite:
    """The same steps in the caller's transaction (SQLite has a single writer anyway)."""

    INSERT_EVENT = insert(Event)
    INSERT_DELIVERY = insert(Delivery)
    WALLET_WEBHOOKS = (
        select(Webhook.id, Webhook.url, Webhook.event_types)
        .where(Webhook.wallet_id == bindparam("wallet_id"))
        .order_by(Webhook.created_at, Webhook.id)
    )
    CLAIM = (
        update(Delivery)
        .where(Delivery.id == bindparam("delivery_id"), *_CLAIMABLE)
        .values(**_CLAIMED)
        .returning(*CLAIM_RETURNING)
    )
    INSERT_ATTEMPT = insert(Attempt).values(
        delivery_id=bindparam("b_delivery_id"),
        round=bindparam("b_round"),
        number=bindparam("b_number"),
        started_at=bindparam("b_started_at"),
        duration_ms=bindparam("b_duration_ms"),
        status_code=bindparam("b_status_code"),
        error=bindparam("b_error"),
    )
    MOVE_ON = _STILL_CLAIMED.values(
        status=bindparam("b_status"),
        lease_until=None,
        updated_at=bindparam("b_now"),
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
    )
    MOVE_ON_TO_RETRY = MOVE_ON.values(
        next_attempt_at=bindparam("b_retry_at"), enqueued_at=bindparam("b_now")
    )

    def publish(self, conn: Connection, event: NewEvent) -> list[tuple]:
        now = event.created_at
        conn.execute(
            self.INSERT_EVENT,
            {
                "id": event.id,
                "wallet_id": event.wallet_id,
                "type": event.type,
                "body": event.body,
                "created_at": now,
            },
        )
        if not event.notified:
            return []
        hooks = conn.execute(self.WALLET_WEBHOOKS, {"wallet_id": event.wallet_id})
        targets = [
            (hook_id, "wallet", url)
            for hook_id, url, types in hooks
            if types is None or event.type in types
        ]
        if event.global_url:
            targets.append((GLOBAL_WEBHOOK_ID, "global", event.global_url))
        rows = [
            {
                "id": uuid.uuid4(),
                "event_id": event.id,
                "wallet_id": event.wallet_id,
                "webhook_id": webhook_id,
                "target": target,
                "url": url,
                "status": PENDING,
                "round": 1,
                "attempts": 0,
                "next_attempt_at": now,
                "enqueued_at": now if event.enqueued else None,
                "created_at": now,
                "updated_at": now,
            }
            for webhook_id, target, url in targets
        ]
        if rows:
            conn.execute(self.INSERT_DELIVERY, rows)
        return [(row["id"], row["url"], row["webhook_id"]) for row in rows]

    def claim(self, conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
        rows = []
        for delivery_id in dict.fromkeys(ids):
            rows.extend(conn.execute(self.CLAIM, {**params, "delivery_id": delivery_id}))
        return rows

    def record(self, conn: Connection, records: list[AttemptRecord], now: datetime) -> set:
        moved_on = set()
        for r in records:
            params = {
                **owner_params(r.delivery_id, r.round, r.number),
                "b_started_at": r.started_at,
                "b_duration_ms": r.duration_ms,
                "b_status_code": r.status_code,
                "b_error": r.error,
                "b_status": r.status,
                "b_now": now,
            }
            conn.execute(self.INSERT_ATTEMPT, params)
            if r.retry_at is None:
                changed = conn.execute(self.MOVE_ON, params).rowcount
            else:
                changed = conn.execute(self.MOVE_ON_TO_RETRY, {**params, "b_retry_at": r.retry_at})
                changed = changed.rowcount
            if changed:
                moved_on.add(r.delivery_id)
        return moved_on


_DIALECTS = {"postgresql": _Postgres(), "sqlite": _Sqlite()}


def _sql(conn: Connection) -> _Postgres | _Sqlite:
    return _DIALECTS[conn.dialect.name]


def owner_params(delivery_id: uuid.UUID, round_: int, number: int) -> dict:
    """What identifies the attempt that owns a claimed row (for `_STILL_CLAIMED`)."""
    return {"b_delivery_id": delivery_id, "b_round": round_, "b_number": number}


def publish(conn: Connection, event: NewEvent) -> list[tuple]:
    """Store the event and one pending delivery per target: [(delivery id, url, webhook id)]."""
    return _sql(conn).publish(conn, event)


def claim(conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
    """Take the due deliveries among `ids` for one attempt each: rows of CLAIM_RETURNING.

    `params`: max_attempts, due_by, lease_until and now. A duplicate id is claimed once.
    """
    return _sql(conn).claim(conn, ids, params)


def record(conn: Connection, records: list[AttemptRecord], now: datetime) -> set[uuid.UUID]:
    """Store the attempts and move their deliveries on; the ids that moved on.

    A delivery whose attempt no longer owns it (cancelled, or declared lost by the sweep) keeps
    its status; its attempt row is stored all the same, so the log shows what was sent.
    """
    return _sql(conn).record(conn, records, now)


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
    finished = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
    result = conn.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.round == expected_round,
            Delivery.status.in_(finished),
        )
        .values(
            status=PENDING,
            round=Delivery.round + 1,
            attempts=0,
            next_attempt_at=now,
            enqueued_at=now,
            lease_until=None,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def _webhook(column):
    return select(column).where(Webhook.id == Delivery.webhook_id).scalar_subquery()


_WEBHOOK_STATUS = _webhook(Webhook.status)
# Due deliveries whose webhook does not take attempts now: a deleted webhook's are cancelled, a
# disabled one's fail, and the others wait in the database (no message anywhere) until their
# webhook recovers or its Retry-After passes.
_PARK_BLOCKED = (
    update(Delivery)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)), *_DUE, ~_WEBHOOK_OPEN)
    .values(
        status=case(
            (Delivery.webhook_id.is_(None), DeliveryStatus.CANCELLED),
            (_WEBHOOK_STATUS == WebhookStatus.DISABLED, DeliveryStatus.FAILED),
            else_=WAITING,
        ),
        last_error=case(
            (Delivery.webhook_id.is_(None), "webhook deleted"),
            (_WEBHOOK_STATUS == WebhookStatus.DISABLED, "webhook disabled"),
            (_WEBHOOK_STATUS == WebhookStatus.FAILING, "waiting: the webhook is failing"),
            else_="waiting: the receiver asked to retry later (Retry-After)",
        ),
        enqueued_at=None,
        updated_at=bindparam("now"),
    )
)


def park_blocked(conn: Connection, ids: list[uuid.UUID], params: dict) -> None:
    """Of these due deliveries, take out of circulation those whose webhook is closed."""
    conn.execute(_PARK_BLOCKED, {**params, "ids": ids})


_PARK_FOR_CAP = (
    update(Delivery)
    .where(Delivery.id == bindparam("delivery_id"), Delivery.status == PENDING)
    .values(
        status=WAITING,
        last_error="waiting: the webhook has its share of attempts running",
        enqueued_at=None,
        updated_at=bindparam("now"),
    )
)


def park_for_cap(conn: Connection, delivery_id: uuid.UUID, now: datetime) -> None:
    """A delivery whose webhook has its share of threads: it waits in the database."""
    conn.execute(_PARK_FOR_CAP, {"delivery_id": delivery_id, "now": now})


def release_waiting(conn: Connection, webhook_id: uuid.UUID, limit: int, now: datetime) -> list:
    """Up to `limit` of the webhook's waiting deliveries, oldest first, back to pending while it
    takes attempts: [(id, url, webhook id)] to send."""
    oldest = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id == webhook_id,
            Delivery.status == WAITING,
            Delivery.next_attempt_at <= now,
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
        .returning(Delivery.id, Delivery.url, Delivery.webhook_id)
    )
    return [tuple(row) for row in conn.execute(statement)]


def start_probe(conn: Connection, webhook_id: uuid.UUID, now: datetime) -> tuple | None:
    """The next attempt of the waiting delivery with the most attempts left (the oldest among
    those) becomes the failing webhook's probe: (id, url, webhook id) to send, or None."""
    candidate = conn.execute(
        select(Delivery.id)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == WAITING)
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
        .returning(Delivery.id, Delivery.url, Delivery.webhook_id)
    ).one()
    return tuple(row)


def fail_waiting(conn: Connection, webhook_id: uuid.UUID, reason: str, now: datetime) -> int:
    """A disabled webhook's waiting deliveries end failed with `reason`."""
    return conn.execute(
        update(Delivery)
        .where(Delivery.webhook_id == webhook_id, Delivery.status.in_((WAITING, PENDING)))
        .values(status=DeliveryStatus.FAILED, last_error=reason, updated_at=now)
    ).rowcount


def insert_operational(conn: Connection, event: dict, delivery: dict) -> tuple:
    """An operational event and its one delivery, to the operations webhook."""
    conn.execute(insert(Event), event)
    conn.execute(insert(Delivery), delivery)
    return delivery["id"], delivery["url"], delivery["webhook_id"]
