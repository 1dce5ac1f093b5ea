"""Recording attempts: one attempt row per outcome, and its delivery moved on only while that
attempt still owns it.

A delivery whose attempt no longer owns it (cancelled, or declared lost by the sweep) keeps its
status; its attempt row is stored all the same, so the log shows what was sent.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.engine import Connection

from shared.models import Attempt, DeliveryStatus, UTCDateTime, Webhook
from shared.store.conditions import STILL_CLAIMED, owner_params
from shared.store.dialect import CompiledOnce, is_postgres
from shared.store.rows import FinishedAttempt
from shared.timeutil import as_utc

# Rows come in as one JSON array: one statement text whatever the batch size, so the server
# plans the same statement every time, and one parameter for the driver to send. Each row also
# reads its webhook's count of failures (a read takes no lock), so that a success costs a second
# statement only when there is a run of failures to end.
_PG_RECORD = CompiledOnce(
    text(
        """
        WITH outcome AS (
            SELECT * FROM json_to_recordset(CAST(:outcomes AS json)) AS t(
                id uuid, round integer, number integer, started_at timestamptz,
                duration_ms double precision, status_code integer, error text, status text,
                retry_at timestamptz)
        ), attempt AS (
            INSERT INTO attempts (delivery_id, round, number, started_at, duration_ms,
                                  status_code, error)
            SELECT id, round, number, started_at, duration_ms, status_code, error FROM outcome
        )
        UPDATE deliveries SET
            status = outcome.status,
            lease_until = NULL,
            updated_at = :now,
            last_status_code = outcome.status_code,
            last_error = outcome.error,
            next_attempt_at = COALESCE(outcome.retry_at, deliveries.next_attempt_at),
            enqueued_at = CASE WHEN outcome.retry_at IS NULL THEN deliveries.enqueued_at
                               ELSE :now END
        FROM outcome
        WHERE deliveries.id = outcome.id AND deliveries.status = :in_flight
          AND deliveries.round = outcome.round AND deliveries.attempts = outcome.number
        RETURNING deliveries.id,
                  (SELECT w.consecutive_failures FROM webhooks w
                   WHERE w.id = deliveries.webhook_id) AS failures
        """
    ).bindparams(bindparam("now", type_=UTCDateTime))
)

_SQLITE_INSERT_ATTEMPT = insert(Attempt).values(
    delivery_id=bindparam("b_delivery_id"),
    round=bindparam("b_round"),
    number=bindparam("b_number"),
    started_at=bindparam("b_started_at"),
    duration_ms=bindparam("b_duration_ms"),
    status_code=bindparam("b_status_code"),
    error=bindparam("b_error"),
)
_SQLITE_MOVE_ON = STILL_CLAIMED.values(
    status=bindparam("b_status"),
    lease_until=None,
    updated_at=bindparam("b_now"),
    last_status_code=bindparam("b_status_code"),
    last_error=bindparam("b_error"),
)
_SQLITE_MOVE_ON_TO_RETRY = _SQLITE_MOVE_ON.values(
    next_attempt_at=bindparam("b_retry_at"), enqueued_at=bindparam("b_now")
)
# Matches nothing while there is no run of failures: then it writes (and locks) nothing.
_RESET_FAILURES = (
    update(Webhook)
    .where(
        Webhook.id.in_(bindparam("webhook_ids", expanding=True)),
        Webhook.consecutive_failures > 0,
    )
    .values(consecutive_failures=0)
)


def record(conn: Connection, attempts: list[FinishedAttempt], now: datetime) -> set[uuid.UUID]:
    """Store the attempts and move their deliveries on; the ids that moved on.

    A success ends its webhook's run of consecutive failures, which other processes may have
    been counting. Only a count above zero (or one not read, on SQLite) costs a second
    statement, after the record's (each commits by itself): writing it in the record's own
    statement would lock the webhook's row after its deliveries', the opposite of the order a
    webhook's deletion takes them in.
    """
    if is_postgres(conn):
        moved_on = _pg_record(conn, attempts, now)
    else:
        moved_on = _sqlite_record(conn, attempts, now)
    succeeded = {
        a.webhook_id
        for a in attempts
        if a.webhook_id
        and a.status == DeliveryStatus.DELIVERED
        and moved_on.get(a.delivery_id, 0) != 0  # None (not read): reset to be sure
    }
    if succeeded:
        conn.execute(_RESET_FAILURES, {"webhook_ids": sorted(succeeded)})
    return set(moved_on)


def _pg_record(conn: Connection, attempts: list[FinishedAttempt], now: datetime) -> dict:
    """{delivery id: its webhook's failures} of the deliveries that moved on."""
    rows = [
        {
            "id": str(a.delivery_id),
            "round": a.round,
            "number": a.number,
            "started_at": as_utc(a.started_at).isoformat(),
            "duration_ms": a.duration_ms,
            "status_code": a.status_code,
            "error": a.error,
            "status": str(a.status),
            "retry_at": as_utc(a.retry_at).isoformat() if a.retry_at else None,
        }
        for a in attempts
    ]
    params = {
        "outcomes": json.dumps(rows, ensure_ascii=False),
        "now": now,
        "in_flight": DeliveryStatus.IN_FLIGHT.value,
    }
    return {row.id: row.failures for row in _PG_RECORD(conn, params)}


def _sqlite_record(conn: Connection, attempts: list[FinishedAttempt], now: datetime) -> dict:
    moved_on = {}
    for a in attempts:
        params = {
            **owner_params(a.delivery_id, a.round, a.number),
            "b_started_at": a.started_at,
            "b_duration_ms": a.duration_ms,
            "b_status_code": a.status_code,
            "b_error": a.error,
            "b_status": a.status,
            "b_now": now,
        }
        conn.execute(_SQLITE_INSERT_ATTEMPT, params)
        if a.retry_at is None:
            changed = conn.execute(_SQLITE_MOVE_ON, params).rowcount
        else:
            changed = conn.execute(_SQLITE_MOVE_ON_TO_RETRY, {**params, "b_retry_at": a.retry_at})
            changed = changed.rowcount
        if changed:
            moved_on[a.delivery_id] = None  # its webhook's failures: not read here
    return moved_on
