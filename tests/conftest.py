"""Fixtures: real servers (PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set,
else SQLite and an embedded Redis), the app, a real receiver, and real worker processes.

A test module may set SERVICE_ENV = {...} to run its app and worker with other settings.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from shared.db import Database
from shared.embedded import EmbeddedRedis
from shared.migrate import prepare_database
from shared.settings import load_settings
from tests.processes import start_beat, start_worker
from tests.receiver import Receiver

ADMIN_TOKEN = "test-admin-token-0123456789"
DEFAULT_WALLET_KEY = "default-wallet-test-key-0123"
TABLES = (
    "attempts",
    "deliveries",
    "events",
    "webhooks",
    "api_keys",
    "entities",
    "wallets",
    "system_values",
)


@pytest.fixture(scope="session")
def logdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def base_env(tmp_path_factory):
    embedded = None
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        embedded = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
        redis_url = embedded.url
    database_url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'webhooks.db'}"
    )
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "DEFAULT_WALLET_AUTH_API_KEY": DEFAULT_WALLET_KEY,
        "WEBHOOK_RETRY_COUNTDOWN": "0.3",
        "WEBHOOK_TIMEOUT": "2",
        "SWEEP_INTERVAL": "0.5",
        "DELIVERY_STUCK_AFTER": "3",
    }
    # The API in this process sends tasks through worker.celery_app, which reads the
    # environment when first imported: point it at the test broker.
    os.environ.update(env)
    prepare_database(load_settings(env))
    yield env
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="module")
def service_env(request, base_env) -> dict[str, str]:
    return {**base_env, **getattr(request.module, "SERVICE_ENV", {})}


@pytest.fixture(scope="module")
def settings(service_env):
    return load_settings(service_env)


@pytest.fixture(scope="session")
def database(base_env):
    db = Database(load_settings(base_env).database_url)
    yield db
    db.dispose()


@pytest.fixture(autouse=True)
def clean_state(request, base_env, database):
    """Every test starts with an empty database (plus the default wallet) and an empty broker."""
    with database.engine.begin() as connection:
        if database.is_sqlite:
            for table in TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
        else:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    redis.Redis.from_url(base_env["REDIS_URL"]).flushdb()
    env = {**base_env, **getattr(request.module, "SERVICE_ENV", {})}
    prepare_database(load_settings(env))


@pytest.fixture
def app(settings):
    from app import create_app

    application = create_app(settings)
    yield application
    application.extensions["cloud_agent_webhooks"].db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def worker(service_env, logdir):
    process = start_worker(service_env, logdir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def beat(service_env, logdir):
    process = start_beat(service_env, logdir)
    yield process
    process.stop()


def admin_headers() -> dict[str, str]:
    return {"x-admin-api-key": ADMIN_TOKEN}


class Tenant:
    def __init__(self, client, wallet_id: str, api_key: str):
        self.client = client
        self.wallet_id = wallet_id
        self.api_key = api_key

    @property
    def headers(self) -> dict[str, str]:
        return {"apikey": self.api_key}

    def add_webhook(self, url: str, **fields) -> dict:
        response = self.client.post(
            "/cloud-agent/events/webhooks", json={"url": url, **fields}, headers=self.headers
        )
        assert response.status_code == 200, response.json
        return response.json

    def publish(self, event_type: str, data: dict):
        return self.client.post(
            "/cloud-agent/events", json={"type": event_type, "data": data}, headers=self.headers
        )


def onboard_tenant(client, name: str = "acme") -> Tenant:
    """Wallet → entity → API key, through the admin routes, as an operator would."""
    wallet = client.post("/cloud-agent/wallets", json={"name": name}, headers=admin_headers())
    assert wallet.status_code == 201, wallet.json
    entity = client.post(
        "/cloud-agent/iam/entities",
        json={"name": f"{name}-entity", "walletId": wallet.json["id"]},
        headers=admin_headers(),
    )
    assert entity.status_code == 201, entity.json
    api_key = f"{name}-key-{uuid.uuid4().hex}"
    registered = client.post(
        "/cloud-agent/iam/apikey-authentication",
        json={"entityId": entity.json["id"], "apiKey": api_key},
        headers=admin_headers(),
    )
    assert registered.status_code == 201, registered.data
    return Tenant(client, wallet.json["id"], api_key)


@pytest.fixture
def tenant(client) -> Tenant:
    return onboard_tenant(client, "acme")


def connection_event(state: str = "InvitationGenerated", **extra) -> dict:
    return {
        "connectionId": str(uuid.uuid4()),
        "label": "Connect with Alice",
        "role": "Inviter",
        "state": state,
        **extra,
    }
