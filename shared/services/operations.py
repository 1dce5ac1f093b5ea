"""Operational events: what an operator learns without polling. When OPERATIONS_WEBHOOK_URL is
set, it receives `WebhookFailing`, `WebhookRecovered`, `WebhookDisabled` and `DeliveryFailed`
in the envelope shape, signed with OPERATIONS_WEBHOOK_SECRET. They are stored and delivered
like any event (through the operations webhook's own row and circuit), and never reach wallet
webhooks or the global webhook."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from shared.models import OPERATIONS_WEBHOOK_ID, Delivery, Target, Webhook, WebhookStatus
from shared.publishing import encode_envelope
from shared.settings import Settings
from shared.store import events
from shared.store.rows import Outgoing
from shared.timeutil import isoformat

_ON_STATUS = {
    WebhookStatus.FAILING: "WebhookFailing",
    WebhookStatus.ACTIVE: "WebhookRecovered",
    WebhookStatus.DISABLED: "WebhookDisabled",
}


def webhook_changed(session: Session, settings: Settings, webhook: Webhook, now) -> list:
    """The operational event for a webhook's new status, if anyone listens."""
    if webhook.id == OPERATIONS_WEBHOOK_ID:  # never about itself: that would feed a loop
        return []
    data = {
        "webhookId": str(webhook.id),
        "status": str(webhook.status),
        "since": isoformat(webhook.status_since or now),
        "consecutiveFailures": webhook.consecutive_failures,
        "lastSuccessAt": isoformat(webhook.last_success_at) if webhook.last_success_at else None,
    }
    return _notify(session, settings, _ON_STATUS[webhook.status], webhook.wallet_id, data, now)


def delivery_failed(session: Session, settings: Settings, delivery: Delivery, now) -> list:
    if delivery.webhook_id == OPERATIONS_WEBHOOK_ID:
        return []
    data = {
        "deliveryId": str(delivery.id),
        "eventId": str(delivery.event_id),
        "webhookId": str(delivery.webhook_id) if delivery.webhook_id else None,
        "target": delivery.target,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
    }
    return _notify(session, settings, "DeliveryFailed", delivery.wallet_id, data, now)


def _notify(session, settings, event_type, wallet_id, data, now: datetime) -> list[Outgoing]:
    url = settings.operations_webhook_url
    if not url:
        return []
    event_id = uuid.uuid4()
    event = {
        "id": event_id,
        "wallet_id": wallet_id,
        "type": event_type,
        "body": encode_envelope(event_id, event_type, now, data, wallet_id),
        "created_at": now,
    }
    delivery = events.new_delivery(
        event_id, wallet_id, OPERATIONS_WEBHOOK_ID, Target.OPERATIONS, url, now, enqueued=True
    )
    return [events.insert_event_with_delivery(session.connection(), event, delivery)]
