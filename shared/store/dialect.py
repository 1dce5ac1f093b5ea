"""What differs between PostgreSQL and SQLite, for the store's statements and the few other
places that must know (migrations, time buckets).

PostgreSQL does each step of the hot path (publish, claim, record) in one statement, atomic by
itself, on an autocommit connection; SQLite, which cannot, does the same in steps inside the
caller's transaction. Each statement module keeps its two forms side by side and asks
`is_postgres` which one to run.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func
from sqlalchemy.engine import Connection, Engine

# Any constant: it serialises concurrent releases and web starts on PostgreSQL.
MIGRATION_LOCK_ID = 7_240_113

# A quoted literal (kept as written), a comment, or a run of whitespace.
_SQL_TOKEN = re.compile(r"'(?:[^']|'')*'|--[^\n]*|\s+")
_QUOTED = re.compile(r"('(?:[^']|'')*')")
_SPACED = re.compile(r" ?([(),=]) ?")
_SPACES = re.compile(r" {2,}")


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


class CompiledOnce:
    """A statement compiled to its SQL text on first use, then handed to the driver as is.

    The hot statements run thousands of times a second with the same text, and SQLAlchemy's
    per-execution work (cache key, parameter processing) is then a large part of their client
    cost. Their parameters are plain values psycopg adapts by itself (UUIDs, aware datetimes,
    text), and their rows come back as the driver gives them, with the columns' names.
    """

    def __init__(self, statement):
        self.statement = statement
        self._sql: str | None = None
        self._constants: dict = {}  # the values the statement itself binds ('in_flight', 1)

    def __call__(self, conn: Connection, params: dict):
        if self._sql is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            self._constants = {
                name: value.value if isinstance(value, enum.Enum) else value
                for name, value in compiled.params.items()
            }
            self._sql = compact(str(compiled))
        return conn.exec_driver_sql(self._sql, {**self._constants, **params})


def compact(sql: str) -> str:
    """The statement without its comments and the whitespace that only lays it out.

    psycopg converts a statement's placeholders on every execution and keeps the result only
    for statements of up to 4,096 bytes: the publish statement, 6,136 bytes as written, was
    converted again on every publish (0.1 to 0.2 ms of the API's CPU). Compacted, it is 3,922.
    """
    spaced = _SQL_TOKEN.sub(lambda token: token[0] if token[0][0] == "'" else " ", sql)
    parts = _QUOTED.split(spaced)  # literals at the odd places
    parts[::2] = [_SPACED.sub(r"\1", _SPACES.sub(" ", part)) for part in parts[::2]]
    return "".join(parts).strip()


def minute_of(conn: Connection, column):
    """The column's time truncated to its minute (a timestamp, or text on SQLite)."""
    if is_postgres(conn):
        return func.date_trunc("minute", column)
    return func.strftime("%Y-%m-%d %H:%M:00", column)


@contextmanager
def migration_lock(conn: Connection) -> Iterator[None]:
    """Serialise migrations across processes: on PostgreSQL, a transaction-level advisory lock
    held by `conn` in a transaction open for the whole block (the migrations run on another
    connection, free to commit as they go). Released with that transaction, it also holds
    behind a transaction-pooling PgBouncer, where a session-level lock could stay behind with
    a pooled server connection. SQLite has one writer anyway."""
    with conn.begin():
        if is_postgres(conn):
            # A statement without parameters, its result read: no portal stays open to keep a
            # snapshot, which a migration building an index concurrently would wait for.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})").scalar()
        yield


def takes_batches(engine: Engine) -> bool:
    """Whether the hot statements take many rows at once (PostgreSQL's forms do)."""
    return engine.dialect.name == "postgresql"
