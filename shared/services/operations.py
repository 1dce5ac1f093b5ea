"""Operational events: what an operator learns without polling. When OPERATIONS_WEBHOOK_URL is
set, it receives `WebhookFailing`, `WebhookRecovered`, `WebhookDisabled` and `DeliveryFailed`
in the envelope shape, signed with OPERATIONS_WEBHOOK_SECRET. They are stored and delivered
like any event (through the operations webhook's own row and circuit), and never reach wallet
webhooks or the global webhook.

One event of the same kind goes to a webhook itself: `WebhookPing`, the probe of a failing
webhook that has no delivery waiting to probe it with (signed as its deliveries are)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from shared.models import (
    OPERATIONS_WEBHOOK_ID,
    Delivery,
    Target,
    Webhook,
    WebhookStatus,
    shown_webhook_id,
)
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
        "webhookId": _shown(webhook.id, webhook.target),
        "status": str(webhook.status),
        "since": isoformat(webhook.status_since or now),
        "consecutiveFailures": webhook.consecutive_failures,
        "lastSuccessAt": isoformat(webhook.last_success_at) if webhook.last_success_at else None,
        "reason": webhook.status_reason if webhook.status == WebhookStatus.DISABLED else None,
    }
    return _notify(session, settings, _ON_STATUS[webhook.status], webhook.wallet_id, data, now)


def ping(session: Session, settings: Settings, webhook: Webhook, now) -> Outgoing | None:
    """A `WebhookPing` to the webhook itself, to probe it with; None when it has no URL."""
    url = {
        Target.GLOBAL: settings.global_webhook_url,
        Target.OPERATIONS: settings.operations_webhook_url,
    }.get(webhook.target, webhook.url)
    if not url:
        return None
    data = {"webhookId": _shown(webhook.id, webhook.target), "status": str(webhook.status)}
    data["since"] = isoformat(webhook.status_since or now)
    to = (webhook.id, webhook.wallet_id, webhook.target, url)
    return _insert(session, "WebhookPing", to, data, now)


def delivery_failed(session: Session, settings: Settings, delivery: Delivery, now) -> list:
    if delivery.webhook_id == OPERATIONS_WEBHOOK_ID:
        return []
    data = {
        "deliveryId": str(delivery.id),
        "eventId": str(delivery.event_id),
        "webhookId": _shown(delivery.webhook_id, delivery.target),
        "target": delivery.target,
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
    }
    return _notify(session, settings, "DeliveryFailed", delivery.wallet_id, data, now)


def _shown(webhook_id, target) -> str | None:
    shown = shown_webhook_id(webhook_id, target)
    return None if shown is None else str(shown)


def _notify(session, settings, event_type, wallet_id, data, now: datetime) -> list[Outgoing]:
    url = settings.operations_webhook_url
    if not url:
        return []
    to = (OPERATIONS_WEBHOOK_ID, wallet_id, Target.OPERATIONS, url)
    return [_insert(session, event_type, to, data, now)]


def _insert(session, event_type: str, to: tuple, data: dict, now) -> Outgoing:
    """An event of `event_type` with its one delivery `to` (webhook row, wallet, target, url)."""
    webhook_id, wallet_id, target, url = to
    event_id = uuid.uuid4()
    event = {
        "id": event_id,
        "wallet_id": wallet_id,
        "type": event_type,
        "body": encode_envelope(event_id, event_type, now, data, wallet_id),
        "created_at": now,
    }
    delivery = events.new_delivery(event_id, wallet_id, webhook_id, target, url, now, enqueued=True)
    return events.insert_event_with_delivery(session.connection(), event, delivery)
