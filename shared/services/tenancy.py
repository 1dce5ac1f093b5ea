"""Wallets, entities and the API keys that map a caller to its wallet."""

from __future__ import annotations

import hashlib
import re
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import (
    ApiKeyOfAnotherEntity,
    DuplicatedEntityId,
    DuplicatedWalletId,
    DuplicatedWalletSeed,
    EntityNotFound,
    InvalidInput,
    NotFound,
    WalletNotFound,
)
from shared.models import DEFAULT_WALLET_ID, ApiKey, Entity, Wallet
from shared.timeutil import utcnow


def hash_api_key(salt: str, api_key: str) -> str:
    return hashlib.sha256((salt + api_key).encode()).hexdigest()


def wallet_for_api_key(session: Session, salt: str, api_key: str) -> uuid.UUID | None:
    return session.scalar(
        select(Entity.wallet_id)
        .join(ApiKey, ApiKey.entity_id == Entity.id)
        .where(ApiKey.key_hash == hash_api_key(salt, api_key))
    )


SEED_BYTES = 64  # a BIP-32 seed, as the Identus agent expects it
_HEX = re.compile(r"[0-9a-fA-F]*")


def seed_digest(seed_hex: str) -> str:
    """sha256_hex of the seed's bytes; the seed itself goes no further than this function."""
    if len(seed_hex) % 2 or not _HEX.fullmatch(seed_hex):
        problem = "it is not an even-length string of hexadecimal digits"
    elif len(seed_hex) // 2 != SEED_BYTES:
        problem = f"the bytes must be {SEED_BYTES}-bytes (got {len(seed_hex) // 2} bytes)"
    else:
        return hashlib.sha256(bytes.fromhex(seed_hex)).hexdigest()
    raise InvalidInput(
        f"The provided wallet seed is not valid hex string representing a BIP-32 seed. ({problem})"
    )


def create_wallet(
    session: Session, name: str, wallet_id: uuid.UUID | None = None, seed: str | None = None
) -> Wallet:
    """A new wallet; `seed` (hex) is only checked and remembered as a digest, as Identus
    refuses a second wallet with the same seed. The seed is checked first, as there."""
    digest = None if seed is None else seed_digest(seed)
    if digest is not None and session.scalar(select(Wallet.id).where(Wallet.seed_digest == digest)):
        raise DuplicatedWalletSeed("A wallet with the same seed already exist")
    if wallet_id is not None and session.get(Wallet, wallet_id) is not None:
        raise _duplicated_wallet_id(wallet_id)
    now = utcnow()
    wallet = Wallet(
        id=wallet_id or uuid.uuid4(), name=name, seed_digest=digest, created_at=now, updated_at=now
    )
    session.add(wallet)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent creation took the id or the seed
        if "seed_digest" in str(exc.orig):
            raise DuplicatedWalletSeed("A wallet with the same seed already exist") from None
        raise _duplicated_wallet_id(wallet.id) from None
    return wallet


def _duplicated_wallet_id(wallet_id: uuid.UUID) -> DuplicatedWalletId:
    return DuplicatedWalletId(f"A wallet with the same ID already exist: walletId={wallet_id}")


def get_wallet(session: Session, wallet_id: uuid.UUID) -> Wallet:
    wallet = session.get(Wallet, wallet_id)
    if wallet is None:
        raise NotFound(f"Wallet id {wallet_id} does not exist.")
    return wallet


def list_wallets(session: Session, offset: int, limit: int) -> tuple[list[Wallet], int]:
    total = session.scalar(select(func.count()).select_from(Wallet))
    rows = session.scalars(
        select(Wallet).order_by(Wallet.created_at, Wallet.id).offset(offset).limit(limit)
    ).all()
    return list(rows), total


def _existing_wallet(session: Session, wallet_id: uuid.UUID) -> None:
    if session.get(Wallet, wallet_id) is None:
        raise WalletNotFound(
            f"There is no wallet matching the given identifier: walletId:{wallet_id}"
        )


def create_entity(
    session: Session,
    name: str,
    wallet_id: uuid.UUID | None = None,
    entity_id: uuid.UUID | None = None,
) -> Entity:
    """A new entity; without a wallet it belongs to the default wallet, as in Identus."""
    wallet_id = wallet_id or DEFAULT_WALLET_ID
    _existing_wallet(session, wallet_id)
    if entity_id is not None and session.get(Entity, entity_id) is not None:
        raise _duplicated_entity_id(entity_id)
    now = utcnow()
    entity = Entity(
        id=entity_id or uuid.uuid4(),
        name=name,
        wallet_id=wallet_id,
        created_at=now,
        updated_at=now,
    )
    session.add(entity)
    try:
        session.flush()
    except IntegrityError:  # a concurrent creation took the id (the wallet cannot vanish)
        raise _duplicated_entity_id(entity.id) from None
    return entity


def _duplicated_entity_id(entity_id: uuid.UUID) -> DuplicatedEntityId:
    return DuplicatedEntityId(f"An entity with the same ID already exists: id={entity_id}")


def get_entity(session: Session, entity_id: uuid.UUID) -> Entity:
    entity = session.get(Entity, entity_id)
    if entity is None:
        raise EntityNotFound(f"There is no entity matching the given identifier: id={entity_id}")
    return entity


def rename_entity(session: Session, entity_id: uuid.UUID, name: str) -> Entity:
    entity = get_entity(session, entity_id)
    entity.name = name
    entity.updated_at = utcnow()
    session.flush()
    return entity


def move_entity(session: Session, entity_id: uuid.UUID, wallet_id: uuid.UUID) -> Entity:
    """The entity, and so every API key it holds, acts on `wallet_id` from now on.

    The wallet is checked before the entity, as in Identus (an unknown wallet answers so even
    for an unknown entity)."""
    _existing_wallet(session, wallet_id)
    entity = get_entity(session, entity_id)
    entity.wallet_id = wallet_id
    entity.updated_at = utcnow()
    session.flush()
    return entity


def list_entities(session: Session, offset: int, limit: int) -> tuple[list[Entity], int]:
    total = session.scalar(select(func.count()).select_from(Entity))
    rows = session.scalars(
        select(Entity).order_by(Entity.created_at, Entity.id).offset(offset).limit(limit)
    ).all()
    return list(rows), total


def delete_entity(session: Session, entity_id: uuid.UUID) -> None:
    entity = get_entity(session, entity_id)
    session.execute(delete(ApiKey).where(ApiKey.entity_id == entity_id))
    session.delete(entity)


def register_api_key(session: Session, salt: str, entity_id: uuid.UUID, api_key: str) -> None:
    get_entity(session, entity_id)
    key_hash = hash_api_key(salt, api_key)
    existing = session.get(ApiKey, key_hash)
    if existing is not None:
        if existing.entity_id == entity_id:
            return  # registering the same key twice is harmless
        # Identus's answer; unlike Identus, the key stays with the entity that holds it.
        raise ApiKeyOfAnotherEntity(
            f"Authentication method is compromised for entityId:{entity_id}, type:apikey"
        )
    session.add(ApiKey(key_hash=key_hash, entity_id=entity_id, created_at=utcnow()))
    try:
        session.flush()
    except IntegrityError:  # registered concurrently: by this entity or another
        raise ApiKeyOfAnotherEntity(
            f"Authentication method is compromised for entityId:{entity_id}, type:apikey"
        ) from None


def unregister_api_key(session: Session, salt: str, entity_id: uuid.UUID, api_key: str) -> None:
    get_entity(session, entity_id)
    deleted = session.execute(
        delete(ApiKey).where(
            ApiKey.key_hash == hash_api_key(salt, api_key), ApiKey.entity_id == entity_id
        )
    )
    if deleted.rowcount == 0:
        raise NotFound("This API key is not registered for that entity.")
