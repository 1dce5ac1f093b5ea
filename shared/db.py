"""The SQLAlchemy engine and sessions, for PostgreSQL in production and SQLite when embedded."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
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
    pool_size: int = 4,
    max_overflow: int = 2,
    prepared_statements: bool = True,
) -> Engine:
    """At most `pool_size` + `max_overflow` connections (the overflow closed when returned)."""
    if database_url.startswith("sqlite"):
        _ensure_sqlite_folder(database_url)
        engine = create_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
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


def _write_lock_first(connection) -> None:
    """Take SQLite's write lock before the transaction's first read.

    SQLite ignores `FOR UPDATE`, and its default transaction takes the lock at its first write:
    two workers could both read a webhook's failure count and both write it plus one, losing a
    failure (a circuit that opened late). Writers then wait for each other (busy timeout)
    instead of reading what another is about to change; readers outside a transaction do not
    wait (WAL)."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine, its one pool and its session factory; one per process.

    Every process holds at most `pool_size` + `max_overflow` connections: statements and
    transactions draw from the same pool (a statement connection is switched to autocommit
    while it is out, which psycopg does without a round trip).
    """

    def __init__(
        self,
        database_url: str,
        pool_size: int = 4,
        max_overflow: int = 2,
        prepared_statements: bool = True,
    ):
        self.engine = make_engine(database_url, pool_size, max_overflow, prepared_statements)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def for_process(cls, settings) -> Database:
        """The database as the settings size it for a web or worker process."""
        return cls(
            settings.database_url,
            settings.database_pool_size,
            settings.database_max_overflow,
            settings.database_prepared_statements,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or rolled back."""
        with self._sessions() as session, session.begin():
            if self.is_sqlite:
                _write_lock_first(session.connection())
            yield session

    def in_batches(self, work: Callable[[Session], T], seconds: float = float("inf"), then=None):
        """Run `work` in a transaction of its own, again and again, until a run does nothing
        (returns 0 or an empty list) or `seconds` have passed (one run at least). `then` gets
        each run's result after its commit. Returns the runs' results added up.

        For work that must not hold one long transaction: the retention purge, recovering or
        detaching thousands of deliveries.
        """
        deadline = time.monotonic() + seconds
        total = None
        while True:
            with self.transaction() as session:
                done = work(session)
            if then is not None:
                then(done)
            total = done if total is None else total + done
            if not done or time.monotonic() >= deadline:
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
                _write_lock_first(connection)
                yield connection
            return
        with self.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads; nothing is committed."""
        with self._sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
