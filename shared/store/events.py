"""Storing events with one pending delivery per target, and the idempotency keys of publish
requests.

On PostgreSQL one statement stores any number of events, their deliveries and the request's
idempotency key, atomic by itself; SQLite does the same in steps inside the caller's
transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Boolean, Text, bindparam, func, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from shared.models import (
    UNFINISHED,
    Delivery,
    DeliveryStatus,
    Event,
    IdempotencyKey,
    Ordering,
    Target,
    Webhook,
    WebhookStatus,
    global_webhook_id,
)
from shared.store.conditions import BEHIND_RECORD
from shared.store.dialect import CompiledOnce, is_postgres
from shared.store.rows import NewEvent, NewKey, Outgoing, StoredKey
from shared.timeutil import as_utc

# The events, their targets and their deliveries in one statement, however many events: they
# come in as one JSON array (one parameter for the driver to send). A wallet's webhooks keep the
# event-type filter (no list, or a list naming the type); a webhook with record ordering gets
# the record key. The webhooks are read with a key-share lock: one being deleted meanwhile is
# waited for and then left out, instead of failing the deliveries' foreign key.
#
# With an idempotency key the statement stores nothing unless it takes the key (new, or older
# than the TTL); it then answers one row with a NULL id, and the caller reads the stored answer.
_PG_PUBLISH = CompiledOnce(
    text(
        """
        WITH new AS (
            SELECT * FROM ROWS FROM (json_to_recordset(CAST(:events AS json)) AS (
                id uuid, wallet_id uuid, type text, body text, created_at timestamptz,
                notified boolean, record_key text, global_id uuid, traceparent text)
            ) WITH ORDINALITY AS t(id, wallet_id, type, body, created_at, notified, record_key,
                                   global_id, traceparent, place)
        ), taken_key AS (
            INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at)
            SELECT CAST(:key_scope AS uuid), CAST(:key AS text), :key_hash, :key_response,
                   CAST(:key_created_at AS timestamptz)
            WHERE CAST(:key AS text) IS NOT NULL
            ON CONFLICT (scope, key) DO UPDATE SET
                request_hash = excluded.request_hash, response = excluded.response,
                created_at = excluded.created_at
            WHERE idempotency_keys.created_at < CAST(:key_expired_before AS timestamptz)
            RETURNING key
        ), go AS (
            SELECT CAST(:key AS text) IS NULL OR EXISTS (SELECT FROM taken_key) AS ok
        ), event AS (
            INSERT INTO events (id, wallet_id, type, body, created_at, traceparent)
            SELECT id, wallet_id, type, body, created_at, traceparent FROM new
            WHERE (SELECT ok FROM go)
            RETURNING id
        ), ordered AS (
            -- A record's place in publish order, drawn in the order the events were given.
            SELECT id, CASE WHEN record_key IS NOT NULL THEN nextval('delivery_seq') END AS seq
            FROM (SELECT id, record_key FROM new ORDER BY place) AS given
        ), global_row AS (
            INSERT INTO webhooks (id, wallet_id, target, url, custom_headers, secret, created_at,
                                  status, consecutive_failures, ordering)
            SELECT global_id, wallet_id, :global_target, '', CAST('{}' AS json), '',
                   CAST(:now AS timestamptz), :active, 0, :no_ordering
            FROM (SELECT DISTINCT global_id, wallet_id FROM new
                  WHERE notified AND CAST(:global_url AS text) IS NOT NULL) AS wallet
            ON CONFLICT (id) DO NOTHING
        ), wallet_targets AS (
            SELECT new.id AS event_id, w.id AS webhook_id, w.url,
                   CASE WHEN w.ordering = :record_ordering THEN new.record_key END AS record_key
            FROM new JOIN webhooks w ON w.wallet_id = new.wallet_id
            WHERE new.notified AND w.target = :wallet_target
              AND (w.event_types IS NULL OR json_typeof(w.event_types) = 'null'
                   OR jsonb_exists(w.event_types::jsonb, new.type))
            FOR KEY SHARE OF w
        ), targets AS (
            SELECT event_id, webhook_id, :wallet_target AS target, url, record_key
            FROM wallet_targets
            UNION ALL
            SELECT new.id, new.global_id, :global_target, CAST(:global_url AS text),
                   CASE WHEN :global_ordered THEN new.record_key END
            FROM new
            WHERE new.notified AND CAST(:global_url AS text) IS NOT NULL
        ), placed AS (
            -- Each target with its record's place: a record's second event in this batch
            -- goes behind its first.
            SELECT targets.*, ordered.seq,
                   row_number() OVER (PARTITION BY targets.webhook_id, targets.record_key
                                      ORDER BY ordered.seq) AS place_in_batch
            FROM targets JOIN ordered ON ordered.id = targets.event_id
        ), earlier AS (
            -- Unfinished deliveries of the same ordered records. A new delivery behind one
            -- waits in the database, as its claim would park it, and is released when the
            -- one before it ends, instead of taking a message now only to be parked. Locked
            -- FOR SHARE: one ending meanwhile records its end after this commit, so the
            -- release that follows its end sees the new delivery.
            SELECT d.webhook_id, d.record_key FROM deliveries d
            WHERE (d.webhook_id, d.record_key) IN
                  (SELECT webhook_id, record_key FROM placed WHERE record_key IS NOT NULL)
              AND d.status IN (:pending, :waiting, :in_flight)
            FOR SHARE OF d
        ), behind AS (
            SELECT placed.*, placed.record_key IS NOT NULL AND (
                       placed.place_in_batch > 1 OR EXISTS (
                           SELECT FROM earlier e WHERE e.webhook_id = placed.webhook_id
                                                   AND e.record_key = placed.record_key)
                   ) AS waits
            FROM placed
        ), delivery AS (
            INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status,
                                    round, attempts, next_attempt_at, enqueued_at, created_at,
                                    updated_at, record_key, seq, last_error)
            SELECT gen_random_uuid(), event.id, new.wallet_id, behind.webhook_id,
                   behind.target, behind.url,
                   CASE WHEN behind.waits THEN :waiting ELSE :pending END, 1, 0, new.created_at,
                   CASE WHEN :enqueued AND NOT behind.waits THEN new.created_at END,
                   new.created_at, new.created_at, behind.record_key,
                   CASE WHEN behind.record_key IS NOT NULL THEN behind.seq END,
                   CASE WHEN behind.waits THEN :behind_record END
            FROM event JOIN new ON new.id = event.id JOIN behind ON behind.event_id = event.id
            RETURNING id, url, webhook_id, wallet_id, status
        )
        SELECT id, url, webhook_id, wallet_id,
               COALESCE((SELECT w.rate_limit FROM webhooks w WHERE w.id = delivery.webhook_id),
                        0) AS rate_limit
        FROM delivery
        WHERE status = :pending
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL FROM go WHERE NOT ok
        """
    ).bindparams(
        bindparam("enqueued", type_=Boolean),
        bindparam("global_url", type_=Text),
        bindparam("global_ordered", type_=Boolean),
    )
)


class KeyTaken(Exception):
    """The request's idempotency key is held by an earlier request (read it: `read_key`)."""


def publish(conn: Connection, events: list[NewEvent], key: NewKey | None) -> list[Outgoing]:
    """Store the events and one pending delivery per target; the deliveries to send.

    The events share `enqueued`, `global_url` and `global_ordered` (one publish request). With
    a key, nothing is stored when another request holds it: KeyTaken.
    """
    if is_postgres(conn):
        rows = _PG_PUBLISH(conn, _pg_params(events, key)).all()
        if any(row.id is None for row in rows):
            raise KeyTaken
        return [Outgoing.of(row) for row in rows]
    if key is not None and not _sqlite_take_key(conn, key):
        raise KeyTaken
    seq = iter(range((conn.execute(_SQLITE_LAST_SEQ).scalar() or 0) + 1, 1 << 62))
    return [outgoing for event in events for outgoing in _sqlite_publish_one(conn, event, seq)]


def _pg_params(events: list[NewEvent], key: NewKey | None) -> dict:
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
            "global_id": str(global_webhook_id(e.wallet_id)),
            "traceparent": e.traceparent,
        }
        for e in events
    ]
    return {
        "events": json.dumps(rows, separators=(",", ":"), ensure_ascii=False),
        "enqueued": first.enqueued,
        "global_url": first.global_url,
        "global_ordered": first.global_ordered,
        "now": first.created_at,
        "active": WebhookStatus.ACTIVE.value,
        "no_ordering": Ordering.NONE.value,
        "record_ordering": Ordering.RECORD.value,
        "wallet_target": Target.WALLET.value,
        "global_target": Target.GLOBAL.value,
        "pending": DeliveryStatus.PENDING.value,
        "waiting": DeliveryStatus.WAITING.value,
        "in_flight": DeliveryStatus.IN_FLIGHT.value,
        "behind_record": BEHIND_RECORD,
        "key": None if key is None else key.key,
        "key_scope": None if key is None else key.scope,
        "key_hash": None if key is None else key.request_hash,
        "key_response": None if key is None else key.response,
        "key_created_at": None if key is None else key.created_at,
        "key_expired_before": None if key is None else key.expired_before,
    }


_INSERT_EVENT = insert(Event)
_INSERT_DELIVERY = insert(Delivery)
_SQLITE_WALLET_WEBHOOKS = (
    select(Webhook.id, Webhook.url, Webhook.event_types, Webhook.ordering, Webhook.rate_limit)
    .where(Webhook.wallet_id == bindparam("wallet_id"), Webhook.target == Target.WALLET)
    .order_by(Webhook.created_at, Webhook.id)
)
_SQLITE_LAST_SEQ = select(func.max(Delivery.seq))
_SQLITE_RECORD_UNFINISHED = (
    select(Delivery.id)
    .where(
        Delivery.webhook_id == bindparam("webhook_id"),
        Delivery.record_key == bindparam("record_key"),
        Delivery.status.in_(UNFINISHED),
    )
    .limit(1)
)
_SQLITE_GLOBAL_ROW = (
    sqlite.insert(Webhook)
    .values(
        id=bindparam("id"),
        wallet_id=bindparam("wallet_id"),
        target=Target.GLOBAL,
        url="",
        custom_headers={},
        secret="",
        created_at=bindparam("now"),
        status=WebhookStatus.ACTIVE,
        consecutive_failures=0,
        ordering=Ordering.NONE,
    )
    .on_conflict_do_nothing(index_elements=[Webhook.id])
)
# Taken when new, or when the key is older than the TTL (then it is a new key).
_SQLITE_TAKE_KEY = (
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


def _sqlite_take_key(conn: Connection, key: NewKey) -> bool:
    params = {
        "scope": key.scope,
        "key": key.key,
        "request_hash": key.request_hash,
        "response": key.response,
        "created_at": key.created_at,
        "expired_before": key.expired_before,
    }
    return conn.execute(_SQLITE_TAKE_KEY, params).first() is not None


def _sqlite_publish_one(conn: Connection, event: NewEvent, seq) -> list[Outgoing]:
    now = event.created_at
    conn.execute(
        _INSERT_EVENT,
        {
            "id": event.id,
            "wallet_id": event.wallet_id,
            "type": event.type,
            "body": event.body,
            "created_at": now,
            "traceparent": event.traceparent,
        },
    )
    if not event.notified:
        return []
    targets = [
        (hook.id, Target.WALLET, hook.url, _record_key(event, hook.ordering == Ordering.RECORD))
        for hook in conn.execute(_SQLITE_WALLET_WEBHOOKS, {"wallet_id": event.wallet_id})
        if hook.event_types is None or event.type in hook.event_types
    ]
    if event.global_url:
        global_id = global_webhook_id(event.wallet_id)
        conn.execute(
            _SQLITE_GLOBAL_ROW, {"id": global_id, "wallet_id": event.wallet_id, "now": now}
        )
        key = _record_key(event, event.global_ordered)
        targets.append((global_id, Target.GLOBAL, event.global_url, key))
    place = next(seq) if event.record_key is not None else None
    rows = [
        new_delivery(
            event.id,
            event.wallet_id,
            webhook_id,
            target,
            url,
            now,
            enqueued=event.enqueued,
            record_key=record_key,
            seq=place if record_key is not None else None,
        )
        for webhook_id, target, url, record_key in targets
    ]
    for row in rows:
        # Behind an unfinished delivery of its record (an earlier event of this batch too: it
        # is stored already): it waits, as on PostgreSQL. SQLite has one writer at a time, so
        # the one before it cannot end unseen meanwhile.
        if (
            row["record_key"] is not None
            and conn.execute(
                _SQLITE_RECORD_UNFINISHED,
                {"webhook_id": row["webhook_id"], "record_key": row["record_key"]},
            ).first()
        ):
            row.update(status=DeliveryStatus.WAITING, enqueued_at=None, last_error=BEHIND_RECORD)
    if rows:
        conn.execute(_INSERT_DELIVERY, rows)
    return [_outgoing(row) for row in rows if row["status"] == DeliveryStatus.PENDING]


def _record_key(event: NewEvent, ordered: bool) -> str | None:
    return event.record_key if ordered else None


def new_delivery(
    event_id: uuid.UUID,
    wallet_id: uuid.UUID | None,
    webhook_id: uuid.UUID,
    target: Target,
    url: str,
    now: datetime,
    enqueued: bool,
    record_key: str | None = None,
    seq: int | None = None,
) -> dict:
    """The values of a new delivery row, pending its first attempt (SQLite's publish, and
    operational events, insert it as is; PostgreSQL's publish writes the same in SQL)."""
    return {
        "id": uuid.uuid4(),
        "event_id": event_id,
        "wallet_id": wallet_id,
        "webhook_id": webhook_id,
        "target": target,
        "url": url,
        "status": DeliveryStatus.PENDING,
        "round": 1,
        "attempts": 0,
        "next_attempt_at": now,
        "enqueued_at": now if enqueued else None,
        "created_at": now,
        "updated_at": now,
        "record_key": record_key,
        "seq": seq,
        "last_error": None,
    }


def insert_event_with_delivery(conn: Connection, event: dict, delivery: dict) -> Outgoing:
    """An event and its one delivery (operational events, to the operations webhook)."""
    conn.execute(_INSERT_EVENT, event)
    conn.execute(_INSERT_DELIVERY, delivery)
    return _outgoing(delivery)


def _outgoing(delivery: dict) -> Outgoing:
    return Outgoing(delivery["id"], delivery["url"], delivery["webhook_id"], delivery["wallet_id"])


def read_key(conn: Connection, scope: uuid.UUID, key: str) -> StoredKey | None:
    """The request hash and answer stored with an idempotency key."""
    row = conn.execute(
        select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
            IdempotencyKey.scope == scope, IdempotencyKey.key == key
        )
    ).first()
    return None if row is None else StoredKey(row.request_hash, row.response)


def delete_expired_keys(conn: Connection, expired_before: datetime) -> int:
    return conn.execute(
        IdempotencyKey.__table__.delete().where(IdempotencyKey.created_at < expired_before)
    ).rowcount
