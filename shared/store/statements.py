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

import enum
import json
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
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from shared.models import (
    GLOBAL_WEBHOOK_ID,
    UNFINISHED,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    IdempotencyKey,
    Ordering,
    UTCDateTime,
    Webhook,
    WebhookStatus,
)
from shared.timeutil import as_utc

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
    record_key: str | None = None  # the record it is about, for webhooks with record ordering
    global_ordered: bool = False  # the global webhook keeps each record's order


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
    webhook_id: uuid.UUID | None = None  # a success of this webhook ends its run of failures


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
    Delivery.record_key,
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
# Per-record order: a delivery with a record key starts only once every earlier delivery of the
# same webhook and record has ended. "Earlier" is publish order: (created_at, id), with the
# events of one batch a microsecond apart in the order given.
_earlier = aliased(Delivery, name="earlier")
_RECORD_FREE = or_(
    Delivery.record_key.is_(None),
    ~exists().where(
        _earlier.webhook_id == Delivery.webhook_id,
        _earlier.record_key == Delivery.record_key,
        # Each status its own comparison, not an IN list: the statement's text is then fixed
        # when it is compiled (see _CompiledOnce).
        or_(*(_earlier.status == status for status in UNFINISHED)),
        or_(
            _earlier.created_at < Delivery.created_at,
            and_(_earlier.created_at == Delivery.created_at, _earlier.id < Delivery.id),
        ),
    ),
)
_CLAIMABLE = (*_DUE, _WEBHOOK_OPEN, _RECORD_FREE)
# An UPDATE of a claimed row that matches only while the given attempt still owns it.
_STILL_CLAIMED = update(Delivery).where(
    Delivery.id == bindparam("b_delivery_id"),
    Delivery.status == IN_FLIGHT,
    Delivery.round == bindparam("b_round"),
    Delivery.attempts == bindparam("b_number"),
)


class _CompiledOnce:
    """A statement compiled to its SQL text on first use, then handed to the driver as is.

    The hot statements run thousands of times a second with the same text; SQLAlchemy's
    per-execution work (cache key, parameter processing) cost more client CPU than the
    driver's. Their parameters are plain values psycopg adapts by itself (UUIDs, aware
    datetimes, text), and their rows come back as the driver gives them (so their result
    columns are not declared).
    """

    def __init__(self, statement):
        self.statement = statement
        self._sql: str | None = None
        self._constants: dict = {}  # the values the statement itself binds ('in_flight', 1)

    def __call__(self, conn: Connection, params: dict):
        if self._sql is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            self._constants = {
                name: value.value if isinstance(value, enum.Enum) else value
                for name, value in compiled.params.items()
            }
            self._sql = str(compiled)
        return conn.exec_driver_sql(self._sql, {**self._constants, **params})


class _Postgres:
    # The events, their targets and their deliveries in one statement, however many events:
    # they come in as one JSON array (one parameter to send, where seven arrays cost the API
    # a tenth of its time in the driver). The wallet's webhooks keep the event-type filter (no
    # list, or a list naming the type); a webhook with record ordering gets the record key.
    PUBLISH = text(
        """
        WITH new AS (
            SELECT * FROM json_to_recordset(CAST(:events AS json)) AS t(
                id uuid, wallet_id uuid, type text, body text, created_at timestamptz,
                notified boolean, record_key text)
        ), event AS (
            INSERT INTO events (id, wallet_id, type, body, created_at)
            SELECT id, wallet_id, type, body, created_at FROM new
            RETURNING id
        ), targets AS (
            SELECT new.id AS event_id, w.id AS webhook_id, 'wallet' AS target, w.url,
                   CASE WHEN w.ordering = 'record' THEN new.record_key END AS record_key
            FROM new JOIN webhooks w ON w.wallet_id = new.wallet_id
            WHERE new.notified
              AND (w.event_types IS NULL OR json_typeof(w.event_types) = 'null'
                   OR jsonb_exists(w.event_types::jsonb, new.type))
            UNION ALL
            SELECT new.id, CAST(:global_id AS uuid), 'global', CAST(:global_url AS text),
                   CASE WHEN :global_ordered THEN new.record_key END
            FROM new
            WHERE new.notified AND CAST(:global_url AS text) IS NOT NULL
        )
        INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                                attempts, next_attempt_at, enqueued_at, created_at, updated_at,
                                record_key)
        SELECT gen_random_uuid(), event.id, new.wallet_id, targets.webhook_id, targets.target,
               targets.url, 'pending', 1, 0, new.created_at,
               CASE WHEN :enqueued THEN new.created_at END, new.created_at, new.created_at,
               targets.record_key
        FROM event JOIN new ON new.id = event.id JOIN targets ON targets.event_id = event.id
        RETURNING id, url, webhook_id
        """
    ).bindparams(
        bindparam("enqueued", type_=Boolean),
        bindparam("global_url", type_=Text),
        bindparam("global_id", type_=Uuid),
        bindparam("global_ordered", type_=Boolean),
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
    # it. Rows come in as one JSON array: one statement text whatever the batch size, so the
    # server plans the same statement every time, and one parameter for the driver to send.
    RECORD = text(
        """
        WITH outcome AS (
            SELECT * FROM json_to_recordset(CAST(:outcomes AS json)) AS t(
                id uuid, round integer, number integer, started_at timestamptz,
                duration_ms double precision, status_code integer, error text, status text,
                retry_at timestamptz)
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
        RETURNING deliveries.id,
                  (SELECT w.consecutive_failures FROM webhooks w
                   WHERE w.id = deliveries.webhook_id) AS failures
        """
    ).bindparams(bindparam("now", type_=UTCDateTime))

    def __init__(self):
        self._publish = _CompiledOnce(self.PUBLISH)
        self._claim = _CompiledOnce(self.CLAIM)
        self._record = _CompiledOnce(self.RECORD)

    def publish(self, conn: Connection, events: list[NewEvent]) -> list[tuple]:
        first = events[0]
        rows = [
            {
                "id": str(e.id),
                "wallet_id": str(e.wallet_id),
                "type": e.type,
                "body": e.body,
                "created_at": as_utc(e.created_at).isoformat(),
                "notified": e.notified,
                "record_key": e.record_key,
            }
            for e in events
        ]
        params = {
            "events": json.dumps(rows, separators=(",", ":"), ensure_ascii=False),
            "enqueued": first.enqueued,
            "global_url": first.global_url,
            "global_id": GLOBAL_WEBHOOK_ID,
            "global_ordered": first.global_ordered,
        }
        return [tuple(row) for row in self._publish(conn, params)]

    # Taken when new, or when the key is older than the TTL (then it is a new key).
    TAKE_KEY = (
        postgresql.insert(IdempotencyKey)
        .on_conflict_do_update(
            index_elements=[IdempotencyKey.scope, IdempotencyKey.key],
            set_={
                "request_hash": postgresql.insert(IdempotencyKey).excluded.request_hash,
                "response": postgresql.insert(IdempotencyKey).excluded.response,
                "created_at": postgresql.insert(IdempotencyKey).excluded.created_at,
            },
            where=IdempotencyKey.created_at < bindparam("expired_before"),
        )
        .returning(IdempotencyKey.key)
    )

    def claim(self, conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
        return self._claim(conn, {**params, "ids": list(set(ids))}).all()

    def record(self, conn: Connection, records: list[AttemptRecord], now: datetime) -> dict:
        rows = [
            {
                "id": str(r.delivery_id),
                "round": r.round,
                "number": r.number,
                "started_at": as_utc(r.started_at).isoformat(),
                "duration_ms": r.duration_ms,
                "status_code": r.status_code,
                "error": r.error,
                "status": str(r.status),
                "retry_at": as_utc(r.retry_at).isoformat() if r.retry_at else None,
            }
            for r in records
        ]
        params = {"outcomes": json.dumps(rows, ensure_ascii=False), "now": now}
        return {row[0]: row[1] for row in self._record(conn, params)}


class _Sqlite:
    """The same steps in the caller's transaction (SQLite has a single writer anyway)."""

    INSERT_EVENT = insert(Event)
    INSERT_DELIVERY = insert(Delivery)
    WALLET_WEBHOOKS = (
        select(Webhook.id, Webhook.url, Webhook.event_types, Webhook.ordering)
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

    def publish(self, conn: Connection, events: list[NewEvent]) -> list[tuple]:
        return [row for event in events for row in self._publish_one(conn, event)]

    def _publish_one(self, conn: Connection, event: NewEvent) -> list[tuple]:
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
            (hook_id, "wallet", url, event.record_key if ordering == Ordering.RECORD else None)
            for hook_id, url, types, ordering in hooks
            if types is None or event.type in types
        ]
        if event.global_url:
            key = event.record_key if event.global_ordered else None
            targets.append((GLOBAL_WEBHOOK_ID, "global", event.global_url, key))
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
                "record_key": record_key,
            }
            for webhook_id, target, url, record_key in targets
        ]
        if rows:
            conn.execute(self.INSERT_DELIVERY, rows)
        return [(row["id"], row["url"], row["webhook_id"]) for row in rows]

    TAKE_KEY = (
        sqlite.insert(IdempotencyKey)
        .on_conflict_do_update(
            index_elements=[IdempotencyKey.scope, IdempotencyKey.key],
            set_={
                "request_hash": sqlite.insert(IdempotencyKey).excluded.request_hash,
                "response": sqlite.insert(IdempotencyKey).excluded.response,
                "created_at": sqlite.insert(IdempotencyKey).excluded.created_at,
            },
            where=IdempotencyKey.created_at < bindparam("expired_before"),
        )
        .returning(IdempotencyKey.key)
    )

    def claim(self, conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
        rows = []
        for delivery_id in dict.fromkeys(ids):
            rows.extend(conn.execute(self.CLAIM, {**params, "delivery_id": delivery_id}))
        return rows

    def record(self, conn: Connection, records: list[AttemptRecord], now: datetime) -> dict:
        moved_on = {}
        for r in records:
            params = {
                **_owner_params(r.delivery_id, r.round, r.number),
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
                moved_on[r.delivery_id] = None  # its webhook's failures: not read here
        return moved_on


_DIALECTS = {"postgresql": _Postgres(), "sqlite": _Sqlite()}


def _sql(conn: Connection) -> _Postgres | _Sqlite:
    return _DIALECTS[conn.dialect.name]


def _owner_params(delivery_id: uuid.UUID, round_: int, number: int) -> dict:
    """What identifies the attempt that owns a claimed row (for `_STILL_CLAIMED`)."""
    return {"b_delivery_id": delivery_id, "b_round": round_, "b_number": number}


def publish(conn: Connection, events: list[NewEvent]) -> list[tuple]:
    """Store the events and one pending delivery per target: [(delivery id, url, webhook id)].

    The events share `enqueued`, `global_url` and `global_ordered` (one publish request)."""
    return _sql(conn).publish(conn, events)


@dataclass(frozen=True)
class NewKey:
    scope: uuid.UUID
    key: str
    request_hash: str
    response: str
    created_at: datetime
    expired_before: datetime  # a key stored before this time is free again


def take_key(conn: Connection, new: NewKey) -> bool:
    """Store the idempotency key, or False when a live one exists (then read it: `read_key`).

    Inside the transaction that publishes: on PostgreSQL a second request with the same key
    waits here for the first one's transaction, and finds its key once it committed.
    """
    params = {
        "scope": new.scope,
        "key": new.key,
        "request_hash": new.request_hash,
        "response": new.response,
        "created_at": new.created_at,
        "expired_before": new.expired_before,
    }
    return conn.execute(_sql(conn).TAKE_KEY, params).first() is not None


def read_key(conn: Connection, scope: uuid.UUID, key: str) -> tuple[str, str] | None:
    """(request hash, response) of a stored key."""
    row = conn.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
            IdempotencyKey.scope == scope, IdempotencyKey.key == key
        )
    ).first()
    return None if row is None else tuple(row)


def delete_expired_keys(conn: Connection, expired_before: datetime) -> int:
    return conn.execute(
        IdempotencyKey.__table__.delete().where(IdempotencyKey.created_at < expired_before)
    ).rowcount


def claim(conn: Connection, ids: list[uuid.UUID], params: dict) -> list:
    """Take the due deliveries among `ids` for one attempt each: rows of CLAIM_RETURNING.

    `params`: max_attempts, due_by, lease_until and now. A duplicate id is claimed once.
    """
    return _sql(conn).claim(conn, ids, params)


def record(conn: Connection, records: list[AttemptRecord], now: datetime) -> set[uuid.UUID]:
    """Store the attempts and move their deliveries on; the ids that moved on.

    A delivery whose attempt no longer owns it (cancelled, or declared lost by the sweep) keeps
    its status; its attempt row is stored all the same, so the log shows what was sent.

    A success ends its webhook's run of consecutive failures, which other processes may have
    been counting. PostgreSQL's record statement reads the count (a read takes no lock), and
    only a count above zero costs a second statement, after the record's (each commits by
    itself): writing it in the record's own statement would lock the webhook's row after its
    deliveries', the opposite of the order a webhook's deletion takes them in.
    """
    moved_on = _sql(conn).record(conn, records, now)  # id -> its webhook's failures, if read
    succeeded = {
        r.webhook_id
        for r in records
        if r.webhook_id
        and r.status == DeliveryStatus.DELIVERED
        and moved_on.get(r.delivery_id, 0) != 0  # None (not read): reset to be sure
    }
    if succeeded:
        conn.execute(_RESET_FAILURES, {"webhook_ids": sorted(succeeded)})
    return set(moved_on)


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
# webhook recovers or its Retry-After passes, or (record ordering) until the delivery before
# them of the same record ends.
BEHIND_RECORD = "waiting: behind an earlier event of the same record"
_PARK_BLOCKED = (
    update(Delivery)
    .where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        *_DUE,
        ~and_(_WEBHOOK_OPEN, _RECORD_FREE),
    )
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
            (_WEBHOOK_OPEN, BEHIND_RECORD),
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
    takes attempts: [(id, url, webhook id)] to send. A delivery behind an earlier one of its
    record stays waiting (the end of that one releases it)."""
    oldest = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id == webhook_id,
            Delivery.status == WAITING,
            Delivery.next_attempt_at <= now,
            _RECORD_FREE,
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


def release_next_of_record(
    conn: Connection, webhook_id: uuid.UUID, record_key: str, now: datetime
) -> list:
    """A delivery of an ordered record ended: the record's next one, if nothing earlier is
    unfinished, goes now: [(id, url, webhook id)] to send, or [].

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
            _RECORD_FREE,
        )
        .order_by(Delivery.created_at, Delivery.id)
        .limit(1)
        .with_for_update()
        .scalar_subquery()
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(head), _WEBHOOK_OPEN)
        .values(status=PENDING, enqueued_at=now, updated_at=now)
        .returning(Delivery.id, Delivery.url, Delivery.webhook_id)
    )
    return [tuple(row) for row in conn.execute(statement, {"now": now})]


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


def start_probe(conn: Connection, webhook_id: uuid.UUID, now: datetime) -> tuple | None:
    """The next attempt of the waiting delivery with the most attempts left (the oldest among
    those) becomes the failing webhook's probe: (id, url, webhook id) to send, or None."""
    candidate = conn.execute(
        select(Delivery.id)
        .where(Delivery.webhook_id == webhook_id, Delivery.status == WAITING, _RECORD_FREE)
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


# Matches nothing while there is no run of failures: then it writes (and locks) nothing.
_RESET_FAILURES = (
    update(Webhook)
    .where(
        Webhook.id.in_(bindparam("webhook_ids", expanding=True)),
        Webhook.consecutive_failures > 0,
    )
    .values(consecutive_failures=0)
)
