"""Counting parks and releases of deliveries, in the bench's database only.

pg_stat_statements needs a server setting (shared_preload_libraries), so the bench counts with
a trigger of its own instead: every change of a delivery's status into `waiting` (a park) or
out of it (a release, when it becomes `pending`) adds a row to an unlogged table, with the
backend and the statement's start time, which together name the statement that made it. The
trigger is a row trigger with a WHEN clause, so an update that leaves `waiting` alone costs
one comparison. Installed before a scenario, read and dropped after it.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import text

from shared.db import Database

INSTALL = (
    """
    CREATE UNLOGGED TABLE bench_transitions (
        delivery_id uuid, webhook_id uuid, old_status text, new_status text,
        backend int, statement_at timestamptz, at timestamptz
    )
    """,
    """
    CREATE FUNCTION bench_note_transition() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO bench_transitions VALUES (NEW.id, NEW.webhook_id, OLD.status, NEW.status,
            pg_backend_pid(), statement_timestamp(), clock_timestamp());
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER bench_transitions AFTER UPDATE OF status ON deliveries FOR EACH ROW
    WHEN ((OLD.status = 'waiting') IS DISTINCT FROM (NEW.status = 'waiting'))
    EXECUTE FUNCTION bench_note_transition()
    """,
)
DROP = (
    "DROP TRIGGER IF EXISTS bench_transitions ON deliveries",
    "DROP FUNCTION IF EXISTS bench_note_transition()",
    "DROP TABLE IF EXISTS bench_transitions",
)


def install(db: Database) -> None:
    drop(db)
    with db.engine.begin() as connection:
        for statement in INSTALL:
            connection.execute(text(statement))


def drop(db: Database) -> None:
    with db.engine.begin() as connection:
        for statement in DROP:
            connection.execute(text(statement))


def count(db: Database, webhook_id, until: float, arrived_events: set[str]) -> dict:
    """Parks and releases of the webhook's deliveries noted up to `until` (epoch seconds): in
    all, and what they cost the deliveries whose event reached the receiver (`arrived_events`):
    rows, and statements (one that released k deliveries counts 1/k for each)."""
    query = text(
        "SELECT t.delivery_id, d.event_id, t.old_status, t.new_status, t.backend,"
        " t.statement_at FROM bench_transitions t JOIN deliveries d ON d.id = t.delivery_id"
        " WHERE t.webhook_id = :webhook AND t.at <= to_timestamp(:until)"
    )
    with db.engine.connect() as connection:
        rows = connection.execute(query, {"webhook": webhook_id, "until": until}).all()
    size = Counter((row.backend, row.statement_at) for row in rows)  # rows per statement
    statements: dict[str, set] = defaultdict(set)
    by_delivery: dict = defaultdict(Counter)
    arrived_rows = arrived_statements = 0.0
    arrived_ids = set()
    for row in rows:
        kind = _kind(row.old_status, row.new_status)
        key = (row.backend, row.statement_at)
        statements[kind].add(key)
        by_delivery[row.delivery_id][kind] += 1
        if str(row.event_id) in arrived_events:
            arrived_rows += 1
            arrived_ids.add(row.delivery_id)
            arrived_statements += 1 / size[key]
    arrived = max(1, len(arrived_events))
    return {
        "rows": dict(Counter(_kind(row.old_status, row.new_status) for row in rows)),
        "statements": {kind: len(keys) for kind, keys in statements.items()},
        "parked_deliveries": sum(1 for kinds in by_delivery.values() if kinds["park"]),
        "most_parks_of_one": max((kinds["park"] for kinds in by_delivery.values()), default=0),
        "arrived": len(arrived_events),
        "rows_per_arrived": round(arrived_rows / arrived, 3),
        "statements_per_arrived": round(arrived_statements / arrived, 3),
        "most_of_one_arrived": max((sum(by_delivery[d].values()) for d in arrived_ids), default=0),
        "all_statements_per_arrived": round(sum(map(len, statements.values())) / arrived, 3),
    }


def _kind(old: str, new: str) -> str:
    if new == "waiting":
        return "park"
    if old == "waiting" and new == "pending":
        return "release"
    return f"{old}->{new}"
