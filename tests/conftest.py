"""Fixtures: real servers (PostgreSQL and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set,
else SQLite and an embedded Redis), the app, a real receiver, and real worker processes.

A test module may set SERVICE_ENV = {...} to run its app and worker with other settings, and
GLOBAL_WEBHOOK = {...} (settings, possibly empty) to send the global webhook's deliveries to the
`global_receiver`. Tests under api/, integration/ and e2e/ start from an empty database and
broker (`clean_state`); unit tests start nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.db import Database
from shared.settings import load_settings
from tests.helpers import (
    ADMIN_TOKEN,
    DEFAULT_WALLET_KEY,
    SECRET_KEY,
    TEST_ENCRYPTION_KEY,
    Tenant,
    onboard_tenant,
)
from tests.processes import start_beat, start_worker
from tests.receiver import Receiver
from tools.embedded_redis import EmbeddedRedis
from tools.migrate import prepare_database

TABLES = (
    "attempts",
    "deliveries",
    "events",
    "webhooks",
    "api_keys",
    "entities",
    "wallets",
    "system_values",
    "idempotency_keys",
    "console_links",
    "console_sessions",
)
TRUNCATE_TRIES = 6


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
        "SECRET_KEY": SECRET_KEY,
        "DEFAULT_WALLET_AUTH_API_KEY": DEFAULT_WALLET_KEY,
        "WEBHOOK_RETRY_COUNTDOWN": "0.3",
        "WEBHOOK_TIMEOUT": "2",
        "SWEEP_INTERVAL": "0.5",
        "DELIVERY_STUCK_AFTER": "3",
        # Most tests are about one delivery's attempts, some against receivers that keep
        # failing; the circuit that would hold their later deliveries has tests of its own.
        "WEBHOOK_CIRCUIT_FAILURES": "1000",
        "SECRET_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
    }
    # The API in this process sends tasks through worker.celery_app, which reads the
    # environment when first imported: point it at the test broker.
    os.environ.update(env)
    prepare_database(load_settings(env))
    yield env
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="module")
def global_receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def service_env(request, base_env) -> dict[str, str]:
    env = {**base_env, **getattr(request.module, "SERVICE_ENV", {})}
    global_webhook = getattr(request.module, "GLOBAL_WEBHOOK", None)
    if global_webhook is not None:
        url = request.getfixturevalue("global_receiver").url("/global")
        env.update({"GLOBAL_WEBHOOK_URL": url, **global_webhook})
    return env


@pytest.fixture(scope="module")
def settings(service_env):
    return load_settings(service_env)


@pytest.fixture(scope="session")
def database(base_env):
    db = Database(load_settings(base_env).database_url)
    yield db
    db.dispose()


@pytest.fixture
def clean_state(request, base_env, database):
    """Every test starts with an empty database (plus the default wallet) and an empty broker."""
    for attempt in range(TRUNCATE_TRIES):
        try:
            _empty_tables(database)
            break
        except OperationalError:
            # The module's worker and beat keep running between tests (a sweep every half
            # second in some); the truncation can deadlock with one of their statements, which
            # PostgreSQL then aborts. Another try a moment later usually falls between two.
            if attempt == TRUNCATE_TRIES - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    redis.Redis.from_url(base_env["REDIS_URL"]).flushdb()
    env = {**base_env, **getattr(request.module, "SERVICE_ENV", {})}
    prepare_database(load_settings(env))


def _empty_tables(database) -> None:
    with database.engine.begin() as connection:
        if database.is_sqlite:
            for table in TABLES:
                connection.execute(text(f"DELETE FROM {table}"))
        else:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))


@pytest.fixture
def app(settings):
    from app import create_app

    application = create_app(settings)
    yield application
    application.extensions["cloud_agent_webhooks"].db.dispose()
    application.extensions["cloud_agent_webhooks"].tracing.shutdown()


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


@pytest.fixture
def tenant(client) -> Tenant:
    return onboard_tenant(client, "acme")
