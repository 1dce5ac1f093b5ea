"""Claims and records of a worker's concurrent attempts, done together on PostgreSQL.

The same work as `delivery.claim` and `delivery.record`, for many deliveries in one statement
each (see shared/batching.py): the driver, the round trip, the planner and the commit are paid
once per batch. Under light load a batch holds one delivery.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Uuid, any_, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY

from shared.batching import Batcher
from shared.db import Database
from shared.models import Delivery, UTCDateTime
from shared.sender import SendResult
from shared.services.delivery import (
    CLAIM_RETURNING,
    CLAIMED_VALUES,
    RETRY,
    SKIPPED,
    STATUS_AFTER,
    Claim,
    DirectStore,
    claim_from_row,
    claim_params,
    outcome_of,
)
from shared.settings import Settings
from shared.timeutil import utcnow

# A row another transaction holds (the sweep re-sending it, or a duplicate message being
# claimed elsewhere) is skipped rather than waited for: that one is already being handled.
# Skipping also means two batches never wait on each other's rows, so they cannot deadlock.
_CLAIMABLE = (
    select(Delivery.id)
    .where(
        Delivery.id == any_(bindparam("ids", type_=ARRAY(Delivery.id.type))),
        Delivery.status == "pending",
        Delivery.attempts < bindparam("max_attempts"),
        Delivery.next_attempt_at <= bindparam("due_by"),
    )
    .with_for_update(skip_locked=True)
)
_CLAIM_MANY = (
    update(Delivery)
    .where(Delivery.id.in_(_CLAIMABLE.scalar_subquery()))
    .values(**CLAIMED_VALUES)
    .returning(Delivery.id, *CLAIM_RETURNING)
)

# One attempt row per outcome, and each delivery moved on only while that attempt still owns
# it, as `delivery.record` does for one. Rows come in as parallel arrays: one statement text
# whatever the batch size, so the server plans the same statement every time.
_RECORD_MANY = (
    text(
        """
    WITH outcome AS (
        SELECT * FROM unnest(
            CAST(:ids AS uuid[]), CAST(:rounds AS integer[]), CAST(:numbers AS integer[]),
            CAST(:started AS timestamptz[]), CAST(:durations AS double precision[]),
            CAST(:codes AS integer[]), CAST(:errors AS text[]), CAST(:statuses AS text[]),
            CAST(:retry_at AS timestamptz[])
        ) AS t(id, round, number, started_at, duration_ms, status_code, error, status, retry_at)
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
    WHERE deliveries.id = outcome.id AND deliveries.status = 'in_flight'
      AND deliveries.round = outcome.round AND deliveries.attempts = outcome.number
    RETURNING deliveries.id
    """
    )
    .bindparams(bindparam("now", type_=UTCDateTime))
    .columns(id=Uuid)
)


class BatchedStore(DirectStore):
    """Claims and records as one statement per batch of concurrent attempts (PostgreSQL)."""

    def __init__(self, db: Database, settings: Settings):
        super().__init__(db, settings)
        self._claims = Batcher(self.claim_many, "claim-batches")
        self._records = Batcher(self.record_many, "record-batches")

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self._claims.submit(delivery_id)

    def record(self, claimed: Claim, started: datetime, result: SendResult) -> str:
        return self._records.submit((claimed, started, result))

    def claim_many(self, delivery_ids: list[uuid.UUID]) -> list[Claim | None]:
        if len(delivery_ids) == 1:  # the single-row statement is cheaper to run
            return [super().claim(delivery_ids[0])]
        now = utcnow()
        params = {**claim_params(self.settings, now), "ids": list(set(delivery_ids))}
        with self.db.statements() as conn:
            rows = {row[0]: row[1:] for row in conn.execute(_CLAIM_MANY, params)}
        claims = []
        for delivery_id in delivery_ids:
            row = rows.pop(delivery_id, None)  # a duplicate message in the batch gets nothing
            claims.append(
                None if row is None else claim_from_row(self.settings, delivery_id, row, now)
            )
        return claims

    def record_many(self, attempts: list[tuple[Claim, datetime, SendResult]]) -> list[str]:
        if len(attempts) == 1:
            return [super().record(*attempts[0])]
        now = utcnow()
        retry_at = now + timedelta(seconds=self.settings.webhook_retry_countdown)
        outcomes = [outcome_of(self.settings, claimed, result) for claimed, _, result in attempts]
        params = {
            "ids": [str(claimed.id) for claimed, _, _ in attempts],
            "rounds": [claimed.round for claimed, _, _ in attempts],
            "numbers": [claimed.number for claimed, _, _ in attempts],
            "started": [started for _, started, _ in attempts],
            "durations": [result.duration_ms for _, _, result in attempts],
            "codes": [result.status_code for _, _, result in attempts],
            "errors": [result.error for _, _, result in attempts],
            "statuses": [STATUS_AFTER[outcome] for outcome in outcomes],
            "retry_at": [retry_at if outcome == RETRY else None for outcome in outcomes],
            "now": now,
        }
        with self.db.statements() as conn:
            moved_on = {row[0] for row in conn.execute(_RECORD_MANY, params)}
        # A row that moved on without its attempt: cancelled, or the sweep declared it lost.
        return [
            outcome if claimed.id in moved_on else SKIPPED
            for (claimed, _, _), outcome in zip(attempts, outcomes, strict=True)
        ]


def delivery_store(db: Database, settings: Settings) -> DirectStore:
    """Batched on PostgreSQL; one statement at a time elsewhere (SQLite has one writer anyway)."""
    if db.engine.dialect.name == "postgresql":
        return BatchedStore(db, settings)
    return DirectStore(db, settings)
