"""First-start state: the API key salt and the default wallet."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.models import (
    BROKER_EPOCH,
    DEFAULT_WALLET_ID,
    GLOBAL_WEBHOOK_ID,
    OPERATIONS_WEBHOOK_ID,
    ApiKey,
    Entity,
    SystemValue,
    Target,
    Wallet,
    Webhook,
)
from shared.secret_box import box_for
from shared.services.tenancy import hash_api_key
from shared.settings import Settings
from shared.signing import generate_secret
from shared.timeutil import utcnow

SALT_KEY = "api_key_salt"


def api_key_salt(session: Session, settings: Settings) -> str:
    """API_KEY_SALT, or a salt generated once and kept in the database for every process."""
    if settings.api_key_salt:
        return settings.api_key_salt
    stored = session.get(SystemValue, SALT_KEY)
    if stored is not None:
        return stored.value
    try:
        with session.begin_nested():
            session.add(SystemValue(key=SALT_KEY, value=secrets.token_urlsafe(24)))
    except IntegrityError:
        pass  # another process stored it first; use theirs
    return session.get(SystemValue, SALT_KEY, populate_existing=True).value


def ensure_default_wallet(session: Session, settings: Settings, salt: str) -> str | None:
    """Create the default wallet on first start; returns its API key when it was generated.

    Later starts change nothing, whatever the variables say: the wallet's webhook lives in
    the database from then on.
    """
    if not settings.default_wallet_enabled or session.get(Wallet, DEFAULT_WALLET_ID) is not None:
        return None
    now = utcnow()
    api_key = settings.default_wallet_auth_api_key or secrets.token_urlsafe(32)
    try:
        with session.begin_nested():
            session.add(
                Wallet(id=DEFAULT_WALLET_ID, name="default", created_at=now, updated_at=now)
            )
            session.flush()
            session.add(
                Entity(
                    id=DEFAULT_WALLET_ID,
                    name="default",
                    wallet_id=DEFAULT_WALLET_ID,
                    created_at=now,
                    updated_at=now,
                )
            )
            session.flush()
            session.add(
                ApiKey(
                    key_hash=hash_api_key(salt, api_key),
                    entity_id=DEFAULT_WALLET_ID,
                    created_at=now,
                )
            )
            if settings.default_wallet_webhook_url:
                box = box_for(settings)
                headers = {}
                if settings.default_wallet_webhook_api_key:
                    headers = {"Authorization": f"Bearer {settings.default_wallet_webhook_api_key}"}
                session.add(
                    Webhook(
                        wallet_id=DEFAULT_WALLET_ID,
                        url=settings.default_wallet_webhook_url,
                        custom_headers=box.seal_values(headers),
                        secret=box.seal(generate_secret()),
                        created_at=now,
                    )
                )
            session.flush()
    except IntegrityError:
        return None  # another process created it at the same moment
    return None if settings.default_wallet_auth_api_key else api_key


def ensure_system_values(session: Session) -> None:
    """Values every process reads and updates (`BROKER_EPOCH`), so that none has to create
    them in a race."""
    if session.get(SystemValue, BROKER_EPOCH) is not None:
        return
    try:
        with session.begin_nested():
            session.add(SystemValue(key=BROKER_EPOCH, value=""))
    except IntegrityError:
        pass  # another process stored it first


def ensure_system_webhook_rows(session: Session) -> None:
    """The global and the operations webhook's rows (no wallet, no URL: deliveries carry it),
    which hold their circuits. The migration creates them; this puts them back if removed."""
    for row_id, target in (
        (GLOBAL_WEBHOOK_ID, Target.GLOBAL),
        (OPERATIONS_WEBHOOK_ID, Target.OPERATIONS),
    ):
        if session.get(Webhook, row_id) is not None:
            continue
        try:
            with session.begin_nested():
                row = Webhook(
                    id=row_id,
                    target=target,
                    url="",
                    custom_headers={},
                    secret="",
                    created_at=utcnow(),
                )
                session.add(row)
        except IntegrityError:
            pass  # another process put it back first
