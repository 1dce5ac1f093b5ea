"""A test event for one webhook: an example event of a type (or `WebhookTest`), stored and
sent to that webhook alone through the normal pipeline, so it is signed, authenticated,
logged and redeliverable like any delivery, and reaches neither the wallet's other webhooks
nor the global webhook."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shared.errors import InvalidInput
from shared.event_types import EVENT_TYPES, TEST_EVENT_TYPE, webhook_test_data
from shared.models import Delivery, Target
from shared.publishing import encode_envelope
from shared.services.webhooks import get_webhook
from shared.store import events
from shared.timeutil import utcnow


def send_test_event(
    session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID, event_type: str | None
) -> Delivery:
    """Store the event and its one delivery; the caller commits, then sends it."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    event_type = event_type or TEST_EVENT_TYPE
    if event_type == TEST_EVENT_TYPE:
        data = webhook_test_data(webhook.id)
    elif event_type in EVENT_TYPES:
        data = EVENT_TYPES[event_type].example_data()
    else:
        known = ", ".join([*EVENT_TYPES, TEST_EVENT_TYPE])
        raise InvalidInput(f"type: must be one of {known}, got {event_type!r}")
    now = utcnow()
    event_id = uuid.uuid4()
    event = {
        "id": event_id,
        "wallet_id": webhook.wallet_id,
        "type": event_type,
        "body": encode_envelope(event_id, event_type, now, data, webhook.wallet_id),
        "created_at": now,
    }
    # No record key, even for a webhook that keeps each record's order: the example is about
    # no real record, and must not hold a real one's events back.
    delivery = events.new_delivery(
        event_id, webhook.wallet_id, webhook.id, Target.WALLET, webhook.url, now, enqueued=True
    )
    sent = events.insert_event_with_delivery(session.connection(), event, delivery)
    return session.get(Delivery, sent.id)
