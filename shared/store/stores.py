"""How a worker claims and records its attempts: one at a time, or together when they overlap.

The claim is committed before the HTTP call, so a duplicate task message finds nothing to
claim, and the attempt count in the database, not Celery's retry counter, decides whether
another attempt is allowed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from shared.db import Database
from shared.settings import Settings
from shared.store import statements
from shared.store.batcher import Batcher
from shared.store.statements import AttemptRecord
from shared.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)
# A retry message may run a moment before the time the database set (clock skew).
DUE_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    """A delivery taken for one attempt, with everything the attempt sends."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    round: int
    number: int
    event_id: uuid.UUID
    target: str
    url: str
    body: str
    custom_headers: dict
    secrets: tuple[str, ...]
    record_key: str | None = None  # set when its webhook keeps each record's order


def claim_from_row(settings: Settings, row, now: datetime) -> Claim:
    """A Claim from the columns of `statements.CLAIM_RETURNING`."""
    delivery_id, webhook_id, round_, number, event_id, target, url, body, headers = row[:9]
    secret, previous, expires, record_key = row[9:]
    custom_headers = headers
    headers, secrets = {}, ()
    if target == "operations":
        if settings.operations_webhook_secret:
            secrets = (settings.operations_webhook_secret,)
    elif target == "global":
        if settings.global_webhook_api_key:
            headers = {"Authorization": f"Bearer {settings.global_webhook_api_key}"}
        if settings.global_webhook_secret:
            secrets = (settings.global_webhook_secret,)
    elif secret is not None:
        headers = custom_headers or {}
        secrets = (secret,)
        if previous and expires is not None and as_utc(expires) > now:
            secrets += (previous,)
    return Claim(
        delivery_id,
        webhook_id,
        round_,
        number,
        event_id,
        target,
        url,
        body,
        headers,
        secrets,
        record_key,
    )


class DirectStore:
    """Each claim and record as a statement of its own, on a pooled connection."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self.claim_many([delivery_id])[0]

    def record(self, attempt: AttemptRecord) -> bool:
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
            rows = {row[0]: row for row in statements.claim(conn, delivery_ids, params)}
            unclaimed = [delivery_id for delivery_id in delivery_ids if delivery_id not in rows]
            if unclaimed:  # duplicates, or deliveries whose webhook does not take attempts now
                try:
                    statements.park_blocked(conn, unclaimed, params)
                except DBAPIError as exc:
                    # The claims are committed already: they must go out. What stays pending
                    # here is parked on its next message, or sent again by the sweep.
                    log.warning("could not park %d deliveries: %s", len(unclaimed), exc.code)
        # A duplicate message in the same batch gets nothing: pop, not get.
        return [
            None
            if (row := rows.pop(delivery_id, None)) is None
            else claim_from_row(self.settings, row, now)
            for delivery_id in delivery_ids
        ]

    def record_many(self, attempts: list[AttemptRecord]) -> list[bool]:
        with self.db.statements() as conn:
            moved_on = statements.record(conn, attempts, utcnow())
        return [attempt.delivery_id in moved_on for attempt in attempts]

    def park_for_cap(self, delivery_id: uuid.UUID) -> None:
        """The delivery waits in the database while its webhook has its share of threads."""
        with self.db.statements() as conn:
            statements.park_for_cap(conn, delivery_id, utcnow())

    def release_waiting(self, webhook_id: uuid.UUID, limit: int) -> list:
        with self.db.statements() as conn:
            return statements.release_waiting(conn, webhook_id, limit, utcnow())

    def release_next_of_record(self, webhook_id: uuid.UUID, record_key: str) -> list:
        with self.db.statements() as conn:
            return statements.release_next_of_record(conn, webhook_id, record_key, utcnow())


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

    def record(self, attempt: AttemptRecord) -> bool:
        return self._records.submit(attempt)


def delivery_store(db: Database, settings: Settings) -> DirectStore:
    """Batched on PostgreSQL; one statement at a time elsewhere (SQLite has one writer anyway)."""
    if db.is_sqlite:
        return DirectStore(db, settings)
    return BatchedStore(db, settings)
