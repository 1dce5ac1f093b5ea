"""Publishing a state change: validate it, store the envelope and one delivery per target."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import NotFound
from shared.event_types import check_event, is_notified
from shared.models import Delivery, Event, Webhook
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


def record_event(
    session: Session,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    enqueued: bool,
) -> PublishedEvent:
    """Store the event and its deliveries; `enqueued` says the caller sends their tasks at once.

    Deliveries not marked enqueued are picked up by the next sweep.
    """
    kind = check_event(event_type, data)
    now = utcnow()
    event_id = uuid.uuid4()
    body = encode_envelope(event_id, event_type, now, data, wallet_id)
    try:
        session.execute(
            insert(Event).values(
                id=event_id, wallet_id=wallet_id, type=event_type, body=body, created_at=now
            )
        )
    except IntegrityError:  # the wallet's foreign key: checked by the insert, not a read
        raise NotFound(f"Wallet id {wallet_id} does not exist.") from None
    targets = _targets(session, settings, wallet_id, event_type) if is_notified(kind, data) else []
    rows = [
        {
            "id": uuid.uuid4(),
            "event_id": event_id,
            "wallet_id": wallet_id,
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
        session.execute(insert(Delivery), rows)
    outgoing = [Outgoing(row["id"], receiver_key(row["url"])) for row in rows]
    return PublishedEvent(event_id, event_type, body, outgoing)


def _targets(session: Session, settings: Settings, wallet_id: uuid.UUID, event_type: str):
    hooks = session.execute(
        select(Webhook.id, Webhook.url, Webhook.event_types)
        .where(Webhook.wallet_id == wallet_id)
        .order_by(Webhook.created_at, Webhook.id)
    )
    targets = [
        (hook_id, "wallet", url)
        for hook_id, url, types in hooks
        if types is None or event_type in types
    ]
    if settings.global_webhook_url:
        targets.append((None, "global", settings.global_webhook_url))
    return targets
