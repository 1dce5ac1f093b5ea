"""Publishing a state change: validate it, store the envelope and one delivery per target, then
send the tasks. The API calls this, and so do producers running in the same Python process:

    from shared.publishing import publish_event
    publish_event(db, settings, wallet_id, "ConnectionUpdated", data, dispatch=send_deliveries)

The event and its deliveries are committed first; only then are the tasks sent (`dispatch`,
e.g. `worker.dispatch.send_deliveries`). Without a dispatcher, or when the broker is down, the
deliveries wait for the next sweep: nothing committed is lost.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from shared.db import Database
from shared.errors import NotFound
from shared.event_types import check_event, is_notified
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


Dispatch = Callable[[Sequence[Outgoing]], None]


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
) -> PublishedEvent:
    """Store the event and its deliveries, then send their tasks (see the module's docstring)."""
    kind = check_event(event_type, data)
    now = utcnow()
    event_id = uuid.uuid4()
    event = statements.NewEvent(
        id=event_id,
        wallet_id=wallet_id,
        type=event_type,
        body=encode_envelope(event_id, event_type, now, data, wallet_id),
        created_at=now,
        notified=is_notified(kind, data),
        enqueued=dispatch is not None,
        global_url=settings.global_webhook_url or None,
    )
    rows = _store(db, event)
    deliveries = [Outgoing.from_row(row) for row in rows]
    if dispatch is not None and deliveries:
        dispatch_or_leave_for_sweep(db, dispatch, deliveries)
    if metrics is not None:
        metrics.event_published(event_type)
    return PublishedEvent(event_id, event_type, event.body, deliveries)


def _store(db: Database, event: statements.NewEvent) -> list[tuple]:
    """One atomic statement on PostgreSQL; one transaction on SQLite.

    A foreign key fails when the wallet does not exist, or when one of its webhooks was deleted
    between the statement's snapshot and its insert: the second try no longer sees that webhook,
    so the event is stored for the others; a wallet that does not exist fails both.
    """
    for last_try in (False, True):
        try:
            with db.statements() as connection:
                return statements.publish(connection, event)
        except IntegrityError:
            if last_try:
                raise NotFound(f"Wallet id {event.wallet_id} does not exist.") from None
    raise AssertionError("unreachable")


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
