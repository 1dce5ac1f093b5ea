"""How a worker claims and records its attempts: one at a time, or together when they overlap.

Each claim and record runs on the database's statement connection (`Database.statements`): on
PostgreSQL every statement commits by itself, so a claim is committed before the HTTP call.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.exc import DBAPIError

from shared.db import Database
from shared.settings import Settings
from shared.store import attempts, claims, waiting
from shared.store.batcher import Batcher
from shared.store.dialect import takes_batches
from shared.store.rows import Claim, FinishedAttempt, Outgoing
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
# A retry message may run a moment before the time the database set (clock skew).
DUE_SLACK = timedelta(seconds=1)


class DirectStore:
    """Each claim and record as a statement of its own, on a pooled connection."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self.claim_many([delivery_id])[0]

    def record(self, attempt: FinishedAttempt) -> bool:
        """Store the attempt; False when its delivery moved on without it."""
        return self.record_many([attempt])[0]

    def claim_many(self, delivery_ids: list[uuid.UUID]) -> list[Claim | None]:
        now = utcnow()
        params = {
            "max_attempts": self.settings.max_attempts,
            "due_by": now + DUE_SLACK,
            "lease_until": now + timedelta(seconds=self.settings.lease_seconds),
            "now": now,
        }
        with self.db.statements() as conn:
            taken = {claim.id: claim for claim in claims.claim(conn, delivery_ids, params)}
            unclaimed = [delivery_id for delivery_id in delivery_ids if delivery_id not in taken]
            if unclaimed:  # duplicates, or deliveries whose webhook does not take attempts now
                try:
                    claims.park_blocked(conn, unclaimed, params)
                except DBAPIError as exc:
                    # The claims are committed already: they must go out. What stays pending
                    # here is parked on its next message, or sent again by the sweep.
                    log.warning("could not park %d deliveries: %s", len(unclaimed), exc.code)
        # A duplicate message in the same batch gets nothing: pop, not get.
        return [taken.pop(delivery_id, None) for delivery_id in delivery_ids]

    def record_many(self, finished: list[FinishedAttempt]) -> list[bool]:
        with self.db.statements() as conn:
            moved_on = attempts.record(conn, finished, utcnow())
        return [attempt.delivery_id in moved_on for attempt in finished]

    def park_for_cap(self, delivery_id: uuid.UUID) -> None:
        """The delivery waits in the database while its webhook has its share of threads."""
        with self.db.statements() as conn:
            claims.park_for_cap(conn, delivery_id, utcnow())

    def release_waiting(self, webhook_id: uuid.UUID, limit: int) -> list[Outgoing]:
        with self.db.statements() as conn:
            return waiting.release_waiting(conn, webhook_id, limit, utcnow())

    def release_next_of_record(self, webhook_id: uuid.UUID, record_key: str) -> list[Outgoing]:
        with self.db.statements() as conn:
            return waiting.release_next_of_record(conn, webhook_id, record_key, utcnow())


class BatchedStore(DirectStore):
    """Claims and records of overlapping attempts as one statement per batch (PostgreSQL).

    The driver, the round trip, the planner and the commit are then paid once per batch;
    under light load a batch holds one delivery.
    """

    def __init__(self, db: Database, settings: Settings):
        super().__init__(db, settings)
        self._claims = Batcher(self.claim_many, "claim-batches")
        self._records = Batcher(self.record_many, "record-batches")

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self._claims.submit(delivery_id)

    def record(self, attempt: FinishedAttempt) -> bool:
        return self._records.submit(attempt)


def delivery_store(db: Database, settings: Settings) -> DirectStore:
    """Batched where one statement takes many rows; one at a time elsewhere (SQLite has one
    writer anyway)."""
    if takes_batches(db.engine):
        return BatchedStore(db, settings)
    return DirectStore(db, settings)
