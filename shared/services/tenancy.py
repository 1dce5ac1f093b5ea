"""Wallets, entities and the API keys that map a caller to its wallet."""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.models import ApiKey, Entity, Wallet
from shared.timeutil import utcnow


def hash_api_key(salt: str, api_key: str) -> str:
    return hashlib.sha256((salt + api_key).encode()).hexdigest()


def wallet_for_api_key(session: Session, salt: str, api_key: str) -> uuid.UUID | None:
    return session.scalar(
        select(Entity.wallet_id)
        .join(ApiKey, ApiKey.entity_id == Entity.id)
        .where(ApiKey.key_hash == hash_api_key(salt, api_key))
    )


def create_wallet(session: Session, name: str, wallet_id: uuid.UUID | None = None) -> Wallet:
    if wallet_id is not None and session.get(Wallet, wallet_id) is not None:
        raise Conflict(f"Wallet id {wallet_id} already exists.")
    now = utcnow()
    wallet = Wallet(id=wallet_id or uuid.uuid4(), name=name, created_at=now, updated_at=now)
    session.add(wallet)
    session.flush()
    return wallet


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


def create_entity(
    session: Session, name: str, wallet_id: uuid.UUID, entity_id: uuid.UUID | None = None
) -> Entity:
    if session.get(Wallet, wallet_id) is None:
        raise NotFound(f"Wallet id {wallet_id} does not exist.")
    if entity_id is not None and session.get(Entity, entity_id) is not None:
        raise Conflict(f"Entity id {entity_id} already exists.")
    now = utcnow()
    entity = Entity(
        id=entity_id or uuid.uuid4(),
        name=name,
        wallet_id=wallet_id,
        created_at=now,
        updated_at=now,
    )
    session.add(entity)
    session.flush()
    return entity


def get_entity(session: Session, entity_id: uuid.UUID) -> Entity:
    entity = session.get(Entity, entity_id)
    if entity is None:
        raise NotFound(f"There is no entity matching the given identifier: id={entity_id}")
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
        raise Conflict("This API key is already registered to another entity.")
    session.add(ApiKey(key_hash=key_hash, entity_id=entity_id, created_at=utcnow()))
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("This API key is already registered.") from None


def unregister_api_key(session: Session, salt: str, entity_id: uuid.UUID, api_key: str) -> None:
    deleted = session.execute(
        delete(ApiKey).where(
            ApiKey.key_hash == hash_api_key(salt, api_key), ApiKey.entity_id == entity_id
        )
    )
    if deleted.rowcount == 0:
        raise NotFound("This API key is not registered for that entity.")
