"""A wallet's webhooks: register, list, rotate the signing secret, delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.errors import InvalidInput, NotFound, TooManyWebhooks
from shared.event_types import EVENT_TYPES
from shared.models import Delivery, DeliveryStatus, Ordering, Wallet, Webhook
from shared.netguard import AddressPolicy
from shared.services import health
from shared.settings import Settings
from shared.signing import generate_secret
from shared.store import deliveries
from shared.store.rows import Outgoing
from shared.timeutil import utcnow
from shared.validation import check_custom_headers, check_destination, check_webhook_url


def create_webhook(
    session: Session,
    wallet_id: uuid.UUID,
    url: str,
    custom_headers: dict | None,
    event_types: list[str] | None,
    limit: int,
    settings: Settings | None = None,
    ordering: str = Ordering.NONE,
) -> Webhook:
    """Register a webhook; with `settings`, refuse a URL their delivery rules would refuse.

    `ordering` "record": its deliveries about one record go one after another (see
    `shared.store.conditions`); it is fixed for the webhook's life."""
    if ordering not in tuple(Ordering):
        raise InvalidInput(f"ordering: must be one of {', '.join(Ordering)}, got {ordering!r}")
    url = check_webhook_url(url)
    if settings is not None:
        policy = None
        if settings.webhook_block_private_networks:
            policy = AddressPolicy(settings.webhook_allowed_networks)
        check_destination(url, settings.webhook_https_only, policy)
    headers = check_custom_headers(custom_headers)
    event_types = check_event_types(event_types)
    # Lock the wallet row so two concurrent registrations cannot both pass the limit.
    session.execute(select(Wallet.id).where(Wallet.id == wallet_id).with_for_update())
    count = session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.wallet_id == wallet_id)
    )
    if count >= limit:
        raise TooManyWebhooks(
            "The maximum number of webhooks has been reached for the wallet: "
            f"walletId={wallet_id}, limit={limit}"
        )
    webhook = Webhook(
        id=uuid.uuid4(),
        wallet_id=wallet_id,
        url=url,
        custom_headers=headers,
        event_types=event_types,
        secret=generate_secret(),
        created_at=utcnow(),
        ordering=ordering,
    )
    session.add(webhook)
    session.flush()
    return webhook


def check_event_types(event_types: list[str] | None) -> list[str] | None:
    if event_types is None:
        return None
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"eventTypes: unknown {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}"
        )
    return sorted(set(event_types))


def list_webhooks(session: Session, wallet_id: uuid.UUID) -> list[Webhook]:
    return list(
        session.scalars(
            select(Webhook)
            .where(Webhook.wallet_id == wallet_id)
            .order_by(Webhook.created_at, Webhook.id)
        )
    )


def get_webhook(session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID) -> Webhook:
    """The wallet's webhook; with no wallet (the operator), any webhook, the global one included."""
    webhook = session.get(Webhook, webhook_id, with_for_update=True)
    # Another wallet's webhook answers exactly as one that does not exist.
    if webhook is None or (wallet_id is not None and webhook.wallet_id != wallet_id):
        raise NotFound(f"There is no webhook with id {webhook_id}.")
    return webhook


def enable_webhook(session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID):
    """Attempts go out again for a disabled or failing webhook; its waiting deliveries are
    released by the next sweeps."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    health.enable(webhook, utcnow())
    session.flush()
    return webhook


def recover_webhook(
    session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID, since: datetime
) -> list[Outgoing]:
    """A new round for each of the webhook's failed deliveries created since `since`, oldest
    first (same event id and bytes): the deliveries to send."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    now = utcnow()
    failed = session.execute(
        select(Delivery.id, Delivery.url, Delivery.webhook_id, Delivery.round)
        .where(
            Delivery.webhook_id == webhook.id,
            Delivery.status == DeliveryStatus.FAILED,
            Delivery.created_at >= since,
        )
        .order_by(Delivery.created_at, Delivery.id)
    ).all()
    return [
        Outgoing.of(row)
        for row in failed
        if deliveries.start_round(session.connection(), row.id, row.round, now)
    ]


def delete_webhook(session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    webhook = get_webhook(session, wallet_id, webhook_id)
    deliveries.cancel_for_webhook(session.connection(), webhook_id, utcnow())
    session.delete(webhook)


def rotate_secret(
    session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID, grace_seconds: float
) -> Webhook:
    """A new signing secret; the old one keeps signing for `grace_seconds`."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = utcnow() + timedelta(seconds=grace_seconds)
    webhook.secret = generate_secret()
    session.flush()
    return webhook
