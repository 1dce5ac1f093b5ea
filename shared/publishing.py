"""Publishing a state change: validate it, store the envelope and one delivery per target. The
caller commits, then sends the tasks (`shared.outbox.send_after_commit`).

Publishing is the API's hot path and uses no ORM objects, so it takes the connection of
`Database.statements()` rather than a Session: on PostgreSQL its one statement commits by
itself, with no BEGIN and COMMIT round trips; on SQLite the block is one transaction.

Producers running in the same Python process use the one call that does all of it:

    from shared.publishing import publish
    publish(db, settings, wallet_id, "ConnectionUpdated", data, dispatch=send_deliveries)

Without a dispatcher, or when the broker is down, the deliveries wait for the next sweep:
nothing committed is lost.

`publish_events` stores up to 100 events together (all or none). Both take an
`idempotency_key`: a repeat of the same request with the same key, within IDEMPOTENCY_TTL,
answers what the first one answered and stores nothing; the same key with another request is a
`KeyReused` (409).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.errors import InvalidInput, KeyReused, NotFound
from shared.event_types import check_event, is_notified, record_key
from shared.metrics import MetricsRecorder
from shared.models import Ordering
from shared.outbox import Dispatch, send_after_commit
from shared.settings import Settings
from shared.store import events as stored
from shared.store.rows import NewEvent, NewKey, Outgoing
from shared.timeutil import isoformat, utcnow
from shared.tracing import valid_traceparent


@dataclass(frozen=True)
class PublishedEvent:
    id: uuid.UUID
    type: str
    body: str  # the exact bytes every target receives, and the API's answer
    deliveries: list[Outgoing]
    replayed: bool = False  # an earlier request with the same idempotency key stored it

    @property
    def types(self) -> list[str]:
        return [] if self.replayed else [self.type]

    @property
    def ids(self) -> list[uuid.UUID]:
        return [self.id]


@dataclass(frozen=True)
class EventInput:
    """One event of a batch."""

    wallet_id: uuid.UUID
    type: str
    data: dict


@dataclass(frozen=True)
class PublishedBatch:
    body: str  # {"events": [envelope, ...]} in the order given: the API's answer
    deliveries: list[Outgoing] = field(default_factory=list)
    replayed: bool = False
    types: list[str] = field(default_factory=list)  # of the events stored
    ids: list[uuid.UUID] = field(default_factory=list)  # of the events stored


MAX_BATCH = 100
# The operator publishes for any wallet: its keys have a scope of their own.
OPERATOR_SCOPE = uuid.UUID(int=(1 << 128) - 2)


def encode_envelope(event_id, event_type, ts, data, wallet_id) -> str:
    # Key order and compact separators match the Identus agent's zio-json output.
    envelope = {
        "type": event_type,
        "id": str(event_id),
        "ts": isoformat(ts),
        "data": data,
        "walletId": None if wallet_id is None else str(wallet_id),
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def publish(
    db: Database,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    dispatch: Dispatch | None = None,
    metrics: MetricsRecorder | None = None,
    traceparent: str | None = None,
) -> PublishedEvent:
    """Publish one state change from a producer in this process: store, commit, send.

    `traceparent`: the producer's W3C trace context, which every attempt then continues."""
    with db.statements() as conn:
        published = publish_event(
            conn,
            settings,
            wallet_id,
            event_type,
            data,
            sending=dispatch is not None,
            traceparent=valid_traceparent(traceparent),
        )
    send_after_commit(db, dispatch, published.deliveries)
    if metrics is not None:
        metrics.events_published(published.types)
    return published


def publish_event(
    conn: Connection,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    sending: bool = True,
    idempotency_key: str | None = None,
    key_scope: uuid.UUID | None = None,
    traceparent: str | None = None,
) -> PublishedEvent:
    """Store the event and its deliveries; the caller commits, then sends their tasks.

    `sending`: the caller sends the tasks after the commit (otherwise the sweep does). The
    idempotency key is scoped to `key_scope`, the caller's wallet (by default the event's).
    `traceparent` (valid W3C, version 00) is stored with the event for its attempts.
    """
    event = _new_event(settings, wallet_id, event_type, data, utcnow(), sending, traceparent)
    key = None
    if idempotency_key is not None:
        request = _request_hash("event", [(wallet_id, event_type, data)])
        key = _new_key(settings, key_scope or wallet_id, idempotency_key, request, event.body)
    deliveries, replay = _store(conn, [event], key)
    if replay is not None:
        stored_event = json.loads(replay)
        return PublishedEvent(uuid.UUID(stored_event["id"]), stored_event["type"], replay, [], True)
    return PublishedEvent(event.id, event_type, event.body, deliveries)


def publish_events(
    conn: Connection,
    settings: Settings,
    events: Sequence[EventInput],
    sending: bool = True,
    idempotency_key: str | None = None,
    key_scope: uuid.UUID | None = None,
    traceparent: str | None = None,
) -> PublishedBatch:
    """Store 1 to 100 events together, or none of them; the caller commits and sends.

    Every event is checked before anything is stored: the first invalid one is an
    InvalidInput naming its index (`events[3].data.state: ...`). The events are ordered as
    given: each one's time is a microsecond after the previous one's. The deliveries are those
    of publishing the events one by one. The key's scope is `key_scope`, else the first
    event's wallet. Every event is stored with `traceparent`.
    """
    if not 1 <= len(events) <= MAX_BATCH:
        raise InvalidInput(f"events: from 1 to {MAX_BATCH} events, got {len(events)}")
    now = utcnow()
    new = []
    for index, item in enumerate(events):
        moment = now + timedelta(microseconds=index)
        try:
            event = _new_event(
                settings, item.wallet_id, item.type, item.data, moment, sending, traceparent
            )
        except InvalidInput as exc:
            raise InvalidInput(f"events[{index}].{exc.detail}") from None
        new.append(event)
    body = '{"events":[' + ",".join(event.body for event in new) + "]}"
    key = None
    if idempotency_key is not None:
        request = _request_hash("batch", [(e.wallet_id, e.type, e.data) for e in events])
        key = _new_key(settings, key_scope or events[0].wallet_id, idempotency_key, request, body)
    deliveries, replay = _store(conn, new, key)
    if replay is not None:
        return PublishedBatch(replay, [], True)
    return PublishedBatch(
        body, deliveries, types=[event.type for event in new], ids=[event.id for event in new]
    )


def _new_event(
    settings: Settings,
    wallet_id,
    event_type,
    data,
    now: datetime,
    sending: bool,
    traceparent: str | None = None,
):
    kind = check_event(event_type, data)
    event_id = uuid.uuid4()
    return NewEvent(
        id=event_id,
        wallet_id=wallet_id,
        type=event_type,
        body=encode_envelope(event_id, event_type, now, data, wallet_id),
        created_at=now,
        notified=is_notified(kind, data),
        enqueued=sending,
        global_url=settings.global_webhook_url or None,
        record_key=record_key(kind, data),
        global_ordered=settings.global_webhook_ordering == Ordering.RECORD,
        traceparent=traceparent,
    )


def _request_hash(kind: str, events: list[tuple]) -> str:
    """What makes two requests the same: the route, and each event's wallet, type and data."""
    canonical = json.dumps(
        [kind, [[str(wallet), kind_, data] for wallet, kind_, data in events]],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _new_key(settings: Settings, scope, key: str, request_hash: str, response: str) -> NewKey:
    now = utcnow()
    return NewKey(
        scope=scope,
        key=key,
        request_hash=request_hash,
        response=response,
        created_at=now,
        expired_before=now - timedelta(seconds=settings.idempotency_ttl),
    )


def _store(
    conn: Connection, events: list[NewEvent], key: NewKey | None
) -> tuple[list[Outgoing], str | None]:
    """(deliveries, None), or ([], the stored answer) for a repeat of a keyed request.

    The key and the events are stored together or not at all: a second request with the same
    key waits for the first one's commit and reads its answer, or takes the key if the first
    rolled back. A wallet that does not exist fails the events' foreign key.
    """
    try:
        return stored.publish(conn, events, key), None
    except stored.KeyTaken:
        return [], _replay(conn, key)
    except IntegrityError:
        wallets = ", ".join(dict.fromkeys(str(event.wallet_id) for event in events))
        raise NotFound(f"Wallet id {wallets} does not exist.") from None


def _replay(conn, key: NewKey) -> str:
    stored_key = stored.read_key(conn, key.scope, key.key)
    if stored_key is None:  # removed by the purge between the two statements: rare; ask again
        raise KeyReused("The idempotency key was just released; send the request again.")
    if stored_key.request_hash != key.request_hash:
        raise KeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a new "
            "request."
        )
    return stored_key.response
