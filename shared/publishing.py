"""Publishing a state change: validate it, store the envelope and one delivery per target, then
send the tasks. The API calls this, and so do producers running in the same Python process:

    from shared.publishing import publish_event
    publish_event(db, settings, wallet_id, "ConnectionUpdated", data, dispatch=send_deliveries)

The event and its deliveries are committed first; only then are the tasks sent (`dispatch`,
e.g. `worker.dispatch.send_deliveries`). Without a dispatcher, or when the broker is down, the
deliveries wait for the next sweep: nothing committed is lost.

`publish_events` stores up to 100 events together (all or none). Both take an
`idempotency_key`: a repeat of the same request with the same key, within IDEMPOTENCY_TTL,
answers what the first one answered and stores nothing; the same key with another request is a
`KeyReused` (409).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.errors import InvalidInput, KeyReused, NotFound
from shared.event_types import check_event, is_notified, record_key
from shared.metrics import MetricsRecorder
from shared.settings import Settings
from shared.store import statements
from shared.throttle import host_key
from shared.timeutil import isoformat, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """A delivery to send: its id, its webhook, and its host (scheme://host:port, no path), so
    that a worker can apply the caps before touching the database."""

    id: uuid.UUID
    webhook_id: uuid.UUID | None
    host: str

    @classmethod
    def from_row(cls, row) -> Outgoing:
        """From (delivery id, url, webhook id), as the store's statements return them."""
        delivery_id, url, webhook_id = row
        return cls(delivery_id, webhook_id, host_key(url))


@dataclass(frozen=True)
class PublishedEvent:
    id: uuid.UUID
    type: str
    body: str  # the exact bytes every target receives, and the API's answer
    deliveries: list[Outgoing]
    replayed: bool = False  # an earlier request with the same idempotency key stored it


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


Dispatch = Callable[[Sequence[Outgoing]], None]
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


def publish_event(
    db: Database,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    dispatch: Dispatch | None = None,
    metrics: MetricsRecorder | None = None,
    idempotency_key: str | None = None,
    key_scope: uuid.UUID | None = None,
) -> PublishedEvent:
    """Store the event and its deliveries, then send their tasks (see the module's docstring).

    The idempotency key is scoped to `key_scope`, the caller's wallet (by default the event's).
    """
    event = _new_event(settings, wallet_id, event_type, data, utcnow(), dispatch is not None)
    key = None
    if idempotency_key is not None:
        request = _request_hash("event", [(wallet_id, event_type, data)])
        key = _new_key(settings, key_scope or wallet_id, idempotency_key, request, event.body)
    rows, replay = _store(db, [event], key)
    if replay is not None:
        stored = json.loads(replay)
        return PublishedEvent(uuid.UUID(stored["id"]), stored["type"], replay, [], True)
    deliveries = _send(db, dispatch, rows)
    if metrics is not None:
        metrics.event_published(event_type)
    return PublishedEvent(event.id, event_type, event.body, deliveries)


def publish_events(
    db: Database,
    settings: Settings,
    events: Sequence[EventInput],
    dispatch: Dispatch | None = None,
    metrics: MetricsRecorder | None = None,
    idempotency_key: str | None = None,
    key_scope: uuid.UUID | None = None,
) -> PublishedBatch:
    """Store 1 to 100 events together, or none of them; then send their tasks.

    Every event is checked before anything is stored: the first invalid one is an
    InvalidInput naming its index (`events[3].data.state: ...`). The events are ordered as
    given: each one's time is a microsecond after the previous one's. The deliveries are those
    of publishing the events one by one. The key's scope is `key_scope`, else the first
    event's wallet.
    """
    if not 1 <= len(events) <= MAX_BATCH:
        raise InvalidInput(f"events: from 1 to {MAX_BATCH} events, got {len(events)}")
    now, enqueued = utcnow(), dispatch is not None
    stored = []
    for index, item in enumerate(events):
        moment = now + timedelta(microseconds=index)
        try:
            event = _new_event(settings, item.wallet_id, item.type, item.data, moment, enqueued)
        except InvalidInput as exc:
            raise InvalidInput(f"events[{index}].{exc.detail}") from None
        stored.append(event)
    body = '{"events":[' + ",".join(event.body for event in stored) + "]}"
    key = None
    if idempotency_key is not None:
        request = _request_hash("batch", [(e.wallet_id, e.type, e.data) for e in events])
        key = _new_key(settings, key_scope or events[0].wallet_id, idempotency_key, request, body)
    rows, replay = _store(db, stored, key)
    if replay is not None:
        return PublishedBatch(replay, [], True)
    deliveries = _send(db, dispatch, rows)
    if metrics is not None:
        for event in stored:
            metrics.event_published(event.type)
    return PublishedBatch(body, deliveries)


def _new_event(settings: Settings, wallet_id, event_type, data, now, enqueued: bool):
    kind = check_event(event_type, data)
    event_id = uuid.uuid4()
    return statements.NewEvent(
        id=event_id,
        wallet_id=wallet_id,
        type=event_type,
        body=encode_envelope(event_id, event_type, now, data, wallet_id),
        created_at=now,
        notified=is_notified(kind, data),
        enqueued=enqueued,
        global_url=settings.global_webhook_url or None,
        record_key=record_key(kind, data),
        global_ordered=settings.global_webhook_ordering == "record",
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


def _new_key(settings: Settings, scope, key: str, request_hash: str, response: str):
    now = utcnow()
    return statements.NewKey(
        scope=scope,
        key=key,
        request_hash=request_hash,
        response=response,
        created_at=now,
        expired_before=now - timedelta(seconds=settings.idempotency_ttl),
    )


def _send(db: Database, dispatch: Dispatch | None, rows: list[tuple]) -> list[Outgoing]:
    deliveries = [Outgoing.from_row(row) for row in rows]
    if dispatch is not None and deliveries:
        dispatch_or_leave_for_sweep(db, dispatch, deliveries)
    return deliveries


def _store(
    db: Database, events: list[statements.NewEvent], key: statements.NewKey | None
) -> tuple[list[tuple], str | None]:
    """(delivery rows, None), or ([], the stored answer) for a repeat of a keyed request.

    Without a key: one atomic statement on PostgreSQL; one transaction on SQLite. With one,
    the key and the events in one transaction: a second request with the same key waits for
    the first one's commit and reads its answer, or takes the key if the first rolled back.

    A foreign key fails when a wallet does not exist, or when one of its webhooks was deleted
    between the statement's snapshot and its insert: the second try no longer sees that webhook,
    so the events are stored for the others; a wallet that does not exist fails both.
    """
    for last_try in (False, True):
        try:
            if key is None:
                with db.statements() as connection:
                    return statements.publish(connection, events), None
            with db.engine.begin() as connection:
                if not statements.take_key(connection, key):
                    return [], _replay(connection, key)
                return statements.publish(connection, events), None
        except IntegrityError:
            if last_try:
                wallets = ", ".join(dict.fromkeys(str(event.wallet_id) for event in events))
                raise NotFound(f"Wallet id {wallets} does not exist.") from None
    raise AssertionError("unreachable")


def _replay(connection, key: statements.NewKey) -> str:
    stored = statements.read_key(connection, key.scope, key.key)
    if stored is None:  # removed by the purge between the two statements: rare; ask again
        raise KeyReused("The idempotency key was just released; send the request again.")
    request_hash, response = stored
    if request_hash != key.request_hash:
        raise KeyReused(
            "This Idempotency-Key was used with a different request; use a new key for a new "
            "request."
        )
    return response


def dispatch_or_leave_for_sweep(db: Database, dispatch: Dispatch, deliveries: Sequence[Outgoing]):
    try:
        dispatch(deliveries)
    except Exception as exc:
        log.warning(
            "could not send %d delivery tasks (%s); the sweep will send them",
            len(deliveries),
            type(exc).__name__,
        )
        leave_for_sweep(db, [delivery.id for delivery in deliveries])


def leave_for_sweep(db: Database, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Mark deliveries as not sent: the next sweep sends their tasks."""
    with db.statements() as connection:
        statements.leave_for_sweep(connection, list(delivery_ids))
