"""Publishing a state change: validate it, store the envelope and one delivery per target."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import Boolean, Text, Uuid, bindparam, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared.errors import NotFound
from shared.event_types import check_event, is_notified
from shared.models import Delivery, Event, UTCDateTime, Webhook
from shared.settings import Settings
from shared.throttle import receiver_key
from shared.timeutil import isoformat, utcnow


@dataclass(frozen=True)
class Outgoing:
    """A delivery to send: its id, and its receiver (scheme://host:port, never the path)."""

    id: uuid.UUID
    receiver: str


@dataclass(frozen=True)
class PublishedEvent:
    id: uuid.UUID
    type: str
    body: str  # the exact bytes every target receives, and the API's answer
    deliveries: list[Outgoing]


def encode_envelope(event_id, event_type, ts, data, wallet_id) -> str:
    # Key order and compact separators match the Identus agent's zio-json output.
    envelope = {
        "type": event_type,
        "id": str(event_id),
        "ts": isoformat(ts),
        "data": data,
        "walletId": str(wallet_id),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


# Built once: publishing is a hot path, and building a statement costs more than running it.
_INSERT_EVENT = insert(Event)
_INSERT_DELIVERY = insert(Delivery)
_WALLET_WEBHOOKS = (
    select(Webhook.id, Webhook.url, Webhook.event_types)
    .where(Webhook.wallet_id == bindparam("wallet_id"))
    .order_by(Webhook.created_at, Webhook.id)
)


def record_event(
    connection: Connection,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    enqueued: bool,
) -> PublishedEvent:
    """Store the event and its deliveries; `enqueued` says the caller sends their tasks at once.

    Deliveries not marked enqueued are picked up by the next sweep. On PostgreSQL this is one
    statement (the connection may be in autocommit); elsewhere the caller's transaction makes
    the steps atomic.
    """
    kind = check_event(event_type, data)
    now = utcnow()
    event_id = uuid.uuid4()
    body = encode_envelope(event_id, event_type, now, data, wallet_id)
    event = {"id": event_id, "wallet_id": wallet_id, "type": event_type, "body": body}
    notified = is_notified(kind, data)
    try:
        if connection.dialect.name == "postgresql":
            rows = _store_in_one_statement(connection, settings, event, notified, now, enqueued)
        else:
            rows = _store_in_steps(connection, settings, event, notified, now, enqueued)
    except IntegrityError:  # the wallet's foreign key: checked by the insert, not a read
        raise NotFound(f"Wallet id {wallet_id} does not exist.") from None
    outgoing = [Outgoing(delivery_id, receiver_key(url)) for delivery_id, url in rows]
    return PublishedEvent(event_id, event_type, body, outgoing)


# PostgreSQL stores the event, picks the targets and inserts their deliveries in one statement:
# one round trip, atomic by itself, so it needs no BEGIN and COMMIT around it. The wallet's
# webhooks keep the event-type filter of `_targets` (no list, or a list naming the type).
_PUBLISH = (
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
        SELECT NULL, 'global', CAST(:global_url AS text)
        WHERE :notified AND CAST(:global_url AS text) IS NOT NULL
    )
    INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                            attempts, next_attempt_at, enqueued_at, created_at, updated_at)
    SELECT gen_random_uuid(), event.id, :wallet_id, targets.webhook_id, targets.target,
           targets.url, 'pending', 1, 0, :now, :enqueued_at, :now, :now
    FROM event, targets
    RETURNING id, url
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
    )
    .columns(id=Uuid, url=Text)
)


def _store_in_one_statement(connection, settings, event, notified, now, enqueued):
    params = {
        **event,
        "now": now,
        "enqueued_at": now if enqueued else None,
        "notified": notified,
        "global_url": settings.global_webhook_url or None,
    }
    return connection.execute(_PUBLISH, params).all()


def _store_in_steps(connection, settings, event, notified, now, enqueued):
    """The same as `_PUBLISH`, in the caller's transaction, for databases without it."""
    connection.execute(_INSERT_EVENT, {**event, "created_at": now})
    targets = _targets(connection, settings, event["wallet_id"], event["type"]) if notified else []
    rows = [
        {
            "id": uuid.uuid4(),
            "event_id": event["id"],
            "wallet_id": event["wallet_id"],
            "webhook_id": webhook_id,
            "target": target,
            "url": url,
            "status": "pending",
            "round": 1,
            "attempts": 0,
            "next_attempt_at": now,
            "enqueued_at": now if enqueued else None,
            "created_at": now,
            "updated_at": now,
        }
        for webhook_id, target, url in targets
    ]
    if rows:
        connection.execute(_INSERT_DELIVERY, rows)
    return [(row["id"], row["url"]) for row in rows]


def _targets(connection: Connection, settings: Settings, wallet_id: uuid.UUID, event_type: str):
    hooks = connection.execute(_WALLET_WEBHOOKS, {"wallet_id": wallet_id})
    targets = [
        (hook_id, "wallet", url)
        for hook_id, url, types in hooks
        if types is None or event_type in types
    ]
    if settings.global_webhook_url:
        targets.append((None, "global", settings.global_webhook_url))
    return targets
