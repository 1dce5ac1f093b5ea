"""A wallet's webhooks: register, list, rotate the signing secret, delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.errors import InvalidInput, NotFound, TooManyWebhooks
from shared.event_types import EVENT_TYPES
from shared.models import GLOBAL_WEBHOOK_ID, Ordering, Target, Wallet, Webhook
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
    rate_limit: int | None = None,
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
        select(func.count())
        .select_from(Webhook)
        .where(Webhook.wallet_id == wallet_id, Webhook.target == Target.WALLET)
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
        rate_limit=rate_limit,
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
            .where(Webhook.wallet_id == wallet_id, Webhook.target == Target.WALLET)
            .order_by(Webhook.created_at, Webhook.id)
        )
    )


def get_webhook(
    session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID, lock: bool = True
) -> Webhook:
    """The wallet's webhook; with no wallet (the operator), any webhook row, the global and
    operations webhooks' included.

    `lock`: the row is locked FOR NO KEY UPDATE, which publishing's key-share locks (and the
    deliveries' foreign key checks) do not wait for.
    """
    lock_mode = {"key_share": True} if lock else None
    webhook = session.get(Webhook, webhook_id, with_for_update=lock_mode)
    # Another wallet's webhook answers exactly as one that does not exist, and a tenant sees
    # only its own webhooks (its rows of the global webhook are the operator's).
    if webhook is None or (
        wallet_id is not None
        and (webhook.wallet_id != wallet_id or webhook.target != Target.WALLET)
    ):
        raise NotFound(f"There is no webhook with id {webhook_id}.")
    return webhook


def _rows_of(session: Session, wallet_id, webhook_id: uuid.UUID) -> list[uuid.UUID]:
    """The rows an action on `webhook_id` acts on: the global webhook stands for every wallet's
    row of it."""
    get_webhook(session, wallet_id, webhook_id, lock=False)
    if webhook_id != GLOBAL_WEBHOOK_ID:
        return [webhook_id]
    return list(session.scalars(select(Webhook.id).where(Webhook.target == Target.GLOBAL)))


def update_webhook(
    session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID, changes: dict
) -> Webhook:
    """Change the settings given (API names): `rateLimit` (None removes the limit); it holds
    for the deliveries sent from now on."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    if "rateLimit" in changes:
        webhook.rate_limit = changes["rateLimit"]
    session.flush()
    return webhook


def enable_webhook(session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID):
    """Attempts go out again for a disabled or failing webhook (for the global webhook, every
    wallet's row of it); its waiting deliveries are released as it takes them."""
    now = utcnow()
    for row_id in _rows_of(session, wallet_id, webhook_id):
        health.enable(get_webhook(session, None, row_id), now)
    session.flush()
    return get_webhook(session, wallet_id, webhook_id, lock=False)


RECOVER_BATCH = 1000


def recover_webhook(
    session: Session, wallet_id: uuid.UUID | None, webhook_id: uuid.UUID, since: datetime
) -> list[Outgoing]:
    """A new round (same event id and bytes) for up to RECOVER_BATCH of the webhook's failed
    deliveries created since `since`, oldest first: the deliveries to send. Call it again,
    each time in a transaction of its own, until it returns fewer (`Database.in_batches`):
    no transaction holds thousands of rows."""
    rows = _rows_of(session, wallet_id, webhook_id)
    return deliveries.start_rounds(session.connection(), rows, since, RECOVER_BATCH, utcnow())


DELETE_BATCH = 1000


def detach_deliveries(session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID) -> int:
    """The first step of deleting a webhook, repeated until it returns 0, each time in a
    transaction of its own: up to DELETE_BATCH of its deliveries let go of it, the unfinished
    ones cancelled. `delete_webhook` then removes the row with little left to touch."""
    get_webhook(session, wallet_id, webhook_id, lock=False)
    return deliveries.detach_from_webhook(session.connection(), webhook_id, DELETE_BATCH, utcnow())


def delete_webhook(session: Session, wallet_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
    """Delete the webhook; deliveries published meanwhile are cancelled with it."""
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
