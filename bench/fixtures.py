"""The bench's data: a fresh database, empty Redis databases, and the tenants it publishes as."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.db import Database
from shared.models import BROKER_EPOCH
from shared.services.bootstrap import api_key_salt
from shared.services.tenancy import create_entity, create_wallet, register_api_key
from shared.services.webhooks import WebhookRequest, create_webhook
from shared.settings import Settings


def recreate_database(database_url: str) -> None:
    """Drop and create the bench's own database (its name must say `bench`)."""
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")  # the driver the service installs
    name = url.database or ""
    if "bench" not in name:
        raise SystemExit(
            f"bench: DATABASE_URL names {name!r}; the bench drops and recreates its database, "
            "so give it one whose name contains 'bench' (default: webhooks_bench)"
        )
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def server_versions(db: Database, redis_url: str) -> dict:
    import celery

    with db.engine.connect() as connection:
        postgresql = connection.execute(text("SHOW server_version")).scalar()
    client = redis.Redis.from_url(redis_url)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    return {"postgresql": postgresql, "redis": redis_version, "celery": celery.__version__}


def flush_redis(redis_url: str) -> None:
    """FLUSHDB on the bench's own database number only."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def clear_events(db: Database) -> None:
    """Remove what the previous scenario published; wallets and webhooks stay.

    The broker's remembered epoch goes back to its first-start value too: scenarios empty
    Redis (`flush_redis`) with the service stopped, and the next sweep should see a first
    start, not Redis losing its data (which sends every pending delivery again)."""
    with db.engine.begin() as connection:
        connection.execute(text("TRUNCATE attempts, deliveries, events"))
        connection.execute(
            text("UPDATE system_values SET value = '' WHERE key = :key"), {"key": BROKER_EPOCH}
        )


@dataclass(frozen=True)
class Tenant:
    name: str
    wallet_id: uuid.UUID
    api_key: str
    url: str
    webhook_id: uuid.UUID | None = None


def make_tenant(
    db: Database,
    settings: Settings,
    name: str,
    url: str,
    ordering: str = "none",
    rate_limit: int | None = None,
) -> Tenant:
    """Wallet → entity → API key → one webhook, as an operator and the tenant would."""
    api_key = f"bench-{name}-{uuid.uuid4().hex}"
    request = WebhookRequest(url, ordering=ordering, rate_limit=rate_limit)
    with db.transaction() as session:
        wallet = create_wallet(session, name)
        entity = create_entity(session, f"{name}-entity", wallet.id)
        register_api_key(session, api_key_salt(session, settings), entity.id, api_key)
        webhook = create_webhook(session, settings, wallet.id, request)
        session.flush()
        webhook_id = webhook.id
    return Tenant(name, wallet.id, api_key, url, webhook_id)


def connection_event() -> dict:
    """The `data` of a typical event: a connection invitation, about 300 bytes once wrapped."""
    return {
        "connectionId": str(uuid.uuid4()),
        "label": "Connect with Alice",
        "role": "Inviter",
        "state": "InvitationGenerated",
        "myDid": "did:peer:2.Ez6LSbench.Vz6MkbenchInviter",
        "goalCode": "present-vp",
    }
