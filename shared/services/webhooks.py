"""A wallet's webhooks: register, change, list, rotate the signing secret, delete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.errors import InvalidInput, NotFound, TooManyWebhooks
from shared.models import GLOBAL_WEBHOOK_ID, Ordering, Target, Wallet, Webhook
from shared.secret_box import box_for
from shared.services import health
from shared.services import webhook_fields as fields
from shared.settings import Settings
from shared.signing import generate_private_key, generate_secret, public_key_of
from shared.store import deliveries
from shared.store.rows import Outgoing
from shared.timeutil import utcnow

SIGNATURE_SCHEMES = ("v1", "v1a")  # HMAC-SHA256 with a whsec_ secret; Ed25519 with a key pair


@dataclass(frozen=True)
class WebhookRequest:
    """What a client asks a new webhook to be."""

    url: str
    custom_headers: dict | None = None
    event_types: list[str] | None = None
    ordering: str = Ordering.NONE
    auth: dict | None = None
    tls: dict | None = None
    signature_scheme: str = "v1"
    rate_limit: int | None = None  # deliveries per second, across every worker


def create_webhook(
    session: Session,
    settings: Settings,
    wallet_id: uuid.UUID,
    request: WebhookRequest,
    limit: int | None = None,
) -> Webhook:
    """Register a webhook (at most `limit`, by default MAX_WEBHOOKS_PER_WALLET, per wallet),
    refusing what its delivery rules would refuse. Its secrets are stored sealed; the signing
    secret of a v1 webhook is on `new_secret`, to be shown once.

    `ordering` "record": its deliveries about one record go one after another (see
    `shared.store.conditions`); it is fixed for the webhook's life."""
    if request.ordering not in tuple(Ordering):
        raise InvalidInput(
            f"ordering: must be one of {', '.join(Ordering)}, got {request.ordering!r}"
        )
    if request.signature_scheme not in SIGNATURE_SCHEMES:
        raise InvalidInput(f"signatureScheme: must be one of {', '.join(SIGNATURE_SCHEMES)}")
    box = box_for(settings)
    url = fields.checked_url(request.url, settings)
    headers = fields.sealed_headers(request.custom_headers, box)
    auth = fields.receiver_auth(request.auth, headers, settings, box)
    tls = fields.receiver_tls(request.tls, url, box)
    event_types = fields.check_event_types(request.event_types)
    limit = settings.max_webhooks_per_wallet if limit is None else limit
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
    asymmetric = request.signature_scheme == "v1a"
    secret = generate_private_key() if asymmetric else generate_secret()
    webhook = Webhook(
        id=uuid.uuid4(),
        wallet_id=wallet_id,
        url=url,
        custom_headers=headers,
        event_types=event_types,
        secret=box.seal(secret),
        public_key=public_key_of(secret) if asymmetric else None,
        auth=auth,
        tls=tls,
        created_at=utcnow(),
        ordering=request.ordering,
        rate_limit=request.rate_limit,
    )
    session.add(webhook)
    session.flush()
    # A private key is never shown: receivers verify with the public key.
    webhook.new_secret = None if asymmetric else secret
    return webhook


def change_webhook(
    session: Session,
    settings: Settings,
    wallet_id: uuid.UUID,
    webhook_id: uuid.UUID,
    changes: dict,
) -> Webhook:
    """Change the fields `changes` names (API names: url, customHeaders, eventTypes, auth,
    tls, rateLimit; ordering and the signature scheme are fixed for life). `auth`, `tls` or
    `rateLimit` null removes them. Unfinished deliveries go to a new URL too; a rate limit
    holds for the deliveries sent from then on."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    box = box_for(settings)
    url = webhook.url
    if "url" in changes:
        url = fields.checked_url(changes["url"], settings)
    headers = webhook.custom_headers
    if "customHeaders" in changes:
        headers = fields.sealed_headers(changes["customHeaders"], box, webhook.custom_headers)
    auth = webhook.auth
    if "auth" in changes:
        auth = fields.receiver_auth(changes["auth"], headers, settings, box)
    else:
        fields.check_auth_beside_headers(auth, headers)
    tls = webhook.tls
    if "tls" in changes:
        tls = fields.receiver_tls(changes["tls"], url, box, stored=webhook.tls)
    else:
        fields.check_tls_beside_url(tls, url)
    if "eventTypes" in changes:
        webhook.event_types = fields.check_event_types(changes["eventTypes"])
    if "rateLimit" in changes:
        webhook.rate_limit = changes["rateLimit"]
    if url != webhook.url:
        deliveries.redirect_unfinished(session.connection(), webhook.id, url, utcnow())
    webhook.url, webhook.custom_headers, webhook.auth, webhook.tls = url, headers, auth, tls
    session.flush()
    return webhook


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
    session: Session,
    settings: Settings,
    wallet_id: uuid.UUID,
    webhook_id: uuid.UUID,
) -> Webhook:
    """A new signing secret (or key pair, for v1a); the old one keeps signing for
    WEBHOOK_SECRET_ROTATION_GRACE. A new v1 secret is on `new_secret`, to be shown once."""
    webhook = get_webhook(session, wallet_id, webhook_id)
    box = box_for(settings)
    asymmetric = webhook.public_key is not None
    secret = generate_private_key() if asymmetric else generate_secret()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = utcnow() + timedelta(
        seconds=settings.secret_rotation_grace
    )
    webhook.secret = box.seal(secret)
    if asymmetric:
        webhook.public_key = public_key_of(secret)
    session.flush()
    webhook.new_secret = None if asymmetric else secret
    return webhook
