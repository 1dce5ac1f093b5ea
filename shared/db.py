"""The SQLAlchemy engine and sessions, for PostgreSQL in production and SQLite when embedded."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

# psycopg prepares a statement on the server once a connection has run it this many times.
PREPARE_AFTER = 5


def _replace_if_closed_by_server(dbapi_connection, _record, _proxy) -> None:
    """On checkout: a pooled PostgreSQL connection the server has closed is replaced.

    An idle connection has nothing to read; a readable socket means the server wrote to it
    since (a restart's "terminating connection" and end of stream). Seeing that takes one
    poll, where a ping before every checkout would take a round trip per request. A
    connection that died without a word (a vanished host) still fails on its first
    statement, as it would after a ping had waited out the network.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed the connection")


def make_engine(
    database_url: str,
    pool_size: int = 10,
    autocommit: bool = False,
    prepared_statements: bool = True,
) -> Engine:
    if database_url.startswith("sqlite"):
        _ensure_sqlite_folder(database_url)
        engine = create_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    options = {}
    if autocommit:
        # Set once per connection rather than switched on every checkout and back on every
        # checkin; with no transaction ever open there is nothing to roll back on return.
        options = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=300,
        connect_args={
            # A dead database must answer 503 quickly, not hang the request.
            "connect_timeout": 5,
            # No statement may hold a worker thread or a request for long; TCP keepalives let
            # a half-open connection (a database host gone without a word) fail, not hang.
            "options": "-c statement_timeout=30000",
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            # The hot statements (publish, claim, record) are then parsed and planned once per
            # connection instead of on every call.
            "prepare_threshold": PREPARE_AFTER if prepared_statements else None,
        },
        **options,
    )
    event.listen(engine, "checkout", _replace_if_closed_by_server)
    return engine


def _ensure_sqlite_folder(database_url: str) -> None:
    path = database_url.split("///", 1)[-1]
    if path and path != ":memory:":
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)


def _tune_sqlite(dbapi_connection, _record) -> None:
    # WAL lets the API read while a worker writes; the busy timeout makes writers queue up
    # instead of failing, since web, worker and beat are separate processes on one file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """An engine and its session factory; one per process."""

    def __init__(
        self,
        database_url: str,
        pool_size: int = 10,
        prepared_statements: bool = True,
    ):
        self.engine = make_engine(database_url, pool_size, prepared_statements=prepared_statements)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Its own pool, which opens connections only when first used.
        self._autocommit_engine = (
            None
            if self.is_sqlite
            else make_engine(database_url, pool_size, True, prepared_statements)
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or rolled back."""
        with self._sessions() as session, session.begin():
            yield session

    def in_batches(self, work: Callable[[Session], int], seconds: float) -> int:
        """Run `work` in a transaction of its own, again and again, until a run does nothing or
        `seconds` have passed (one run at least); the total of what the runs returned.

        For maintenance that must not hold one long transaction (the retention purge).
        """
        deadline = time.monotonic() + seconds
        total = 0
        while True:
            with self.transaction() as session:
                done = work(session)
            total += done
            if done == 0 or time.monotonic() >= deadline:
                return total

    @contextmanager
    def statements(self) -> Iterator[Connection]:
        """A connection for work done in single statements, each atomic by itself.

        On PostgreSQL each statement commits on its own (no BEGIN/COMMIT round trips: the hot
        paths are one statement to publish an event, one to claim a delivery and one to record
        its attempt); SQLite, which cannot do those in one statement, gets one transaction for
        the block.
        """
        if self.is_sqlite:
            with self.engine.begin() as connection:
                yield connection
            return
        with self._autocommit_engine.connect() as connection:
            yield connection

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads; nothing is committed."""
        with self._sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()
