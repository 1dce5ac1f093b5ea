"""Pooled PostgreSQL connections the server closed (a restart, an operator's kill) are replaced
when taken from the pool, not handed to a request or a delivery to fail on."""

import pytest
from sqlalchemy import text

from shared.db import Database
from shared.settings import load_settings


@pytest.fixture
def pooled(base_env):
    if not base_env["DATABASE_URL"].startswith("postgresql"):
        pytest.skip("PostgreSQL's connections (TEST_DATABASE_URL)")
    db = Database(load_settings(base_env).database_url, pool_size=1)
    yield db
    db.dispose()


def _backend_pid(connection) -> int:
    return connection.execute(text("SELECT pg_backend_pid()")).scalar()


@pytest.mark.parametrize("kind", ["statements", "transaction"])
def test_a_connection_the_server_ended_is_replaced_at_checkout(pooled, database, kind):
    open_block = pooled.statements if kind == "statements" else pooled.engine.begin
    with open_block() as connection:
        ended = _backend_pid(connection)
    # As a restart does to every connection: the server ends it while it sits in the pool
    # (and, as a restart would be, is done with it before the next request: the timeout
    # makes pg_terminate_backend wait until the backend has exited).
    with database.engine.begin() as admin:
        assert admin.execute(
            text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": ended}
        ).scalar()
    with open_block() as connection:  # no error: a new connection took its place
        assert _backend_pid(connection) != ended
