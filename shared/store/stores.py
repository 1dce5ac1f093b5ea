"""How a worker claims and records its attempts: one at a time, or together when they overlap.

Each claim and record runs on the database's statement connection (`Database.statements`): on
PostgreSQL every statement commits by itself, so a claim is committed before the HTTP call.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.db import Database
from shared.models import Webhook
from shared.settings import Settings
from shared.store import attempts, claims, waiting
from shared.store.batcher import Batcher
from shared.store.dialect import takes_batches
from shared.store.rows import Claim, FinishedAttempt, Outgoing
from shared.timeutil import utcnow

log = logging.getLogger(__name__)
# A retry message may run a moment before the time the database set (clock skew).
DUE_SLACK = timedelta(seconds=1)
RECORD_RETRY_FIRST = 0.5  # seconds, doubling up to
RECORD_RETRY_MAX = 4.0


class DirectStore:
    """Each claim and record as a statement of its own, on a pooled connection."""

    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None):
        self.db = db
        self.settings = settings
        self.worker_id = worker_id  # the process that claims (its heartbeat tells it lives)

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self.claim_many([delivery_id])[0]

    def record(self, attempt: FinishedAttempt) -> bool:
        """Store the attempt; False when its delivery moved on without it."""
        return _raised(self.record_many([attempt])[0])

    def claim_many(self, delivery_ids: list[uuid.UUID]) -> list[Claim | None]:
        now = utcnow()
        params = {
            "max_attempts": self.settings.max_attempts,
            "due_by": now + DUE_SLACK,
            "lease_until": now + timedelta(seconds=self.settings.lease_seconds),
            "now": now,
            "worker": self.worker_id,
        }
        with self.db.statements() as conn:
            taken = {claim.id: claim for claim in claims.claim(conn, delivery_ids, params)}
            unclaimed = [delivery_id for delivery_id in delivery_ids if delivery_id not in taken]
            # Duplicates, deliveries whose webhook does not take attempts now, and rows another
            # statement held.
            if unclaimed:
                try:
                    claims.park_blocked(conn, unclaimed, params)
                except DBAPIError as exc:
                    # The claims are committed already: they must go out. What stays pending
                    # here is parked on its next message, or sent again by the sweep.
                    log.warning("could not park %d deliveries: %s", len(unclaimed), exc.code)
                taken.update(
                    (claim.id, claim) for claim in claims.claim_held(conn, unclaimed, params)
                )
        # A duplicate message in the same batch gets nothing: pop, not get.
        return [taken.pop(delivery_id, None) for delivery_id in delivery_ids]

    def record_many(self, finished: list[FinishedAttempt]) -> list[bool | Exception]:
        """Store the attempts together; False for each whose delivery moved on without it.

        An attempt made is worth keeping through a database outage: while the database is
        unreachable the record is tried again, for as long as the attempts' lease lasts
        (their slots and rows stay theirs meanwhile). When the statement itself fails, each
        attempt is recorded by itself, so that one bad row costs only its own record (its
        item is then the exception).
        """
        give_up = time.monotonic() + self.settings.lease_seconds - self.settings.webhook_timeout
        pause = RECORD_RETRY_FIRST
        while True:
            try:
                with self.db.statements() as conn:
                    moved_on = attempts.record(conn, finished, utcnow())
                return [attempt.delivery_id in moved_on for attempt in finished]
            except OperationalError:
                if time.monotonic() + pause > give_up:
                    raise
                log.warning("database unreachable: recording %d attempts again", len(finished))
                time.sleep(pause)
                pause = min(pause * 2, RECORD_RETRY_MAX)
            except DBAPIError:
                if len(finished) == 1:
                    raise
                return [self._record_alone(attempt) for attempt in finished]

    def _record_alone(self, attempt: FinishedAttempt) -> bool | Exception:
        try:
            return self.record_many([attempt])[0]
        except DBAPIError as exc:
            log.warning("an attempt could not be recorded: delivery=%s", attempt.delivery_id)
            return exc

    def park(self, delivery_id: uuid.UUID, reason: str, due: datetime | None = None) -> None:
        """The delivery waits in the database (until `due`, if given), no attempt spent."""
        self.park_many([(delivery_id, reason, due)])

    def park_many(self, parks: list[tuple[uuid.UUID, str, datetime | None]]) -> list[None]:
        """Park these (delivery id, reason, due): one statement per reason and due."""
        alike: dict[tuple, list[uuid.UUID]] = {}
        for delivery_id, reason, due in parks:
            alike.setdefault((reason, due), []).append(delivery_id)
        now = utcnow()
        with self.db.statements() as conn:
            for (reason, due), ids in alike.items():
                claims.park(conn, ids, reason, now, due)
        return [None] * len(parks)

    def rate_limit(self, webhook_id: uuid.UUID) -> int:
        """The webhook's rate limit (0: none), for a message that did not carry it."""
        # A read: on SQLite a statements block would take the write lock for nothing.
        with self.db.session() as session:
            return session.scalar(select(Webhook.rate_limit).where(Webhook.id == webhook_id)) or 0

    def release_waiting(self, webhook_id: uuid.UUID, limit: int) -> list[Outgoing]:
        with self.db.statements() as conn:
            return waiting.release_waiting(conn, webhook_id, limit, utcnow())

    def release_next_of_record(self, webhook_id: uuid.UUID, record_key: str) -> list[Outgoing]:
        with self.db.statements() as conn:
            return waiting.release_next_of_record(conn, webhook_id, record_key, utcnow())


class BatchedStore(DirectStore):
    """Claims, records and parks of overlapping tasks as one statement per batch (PostgreSQL).

    The driver, the round trip, the planner and the commit are then paid once per batch;
    under light load a batch holds one delivery.
    """

    def __init__(self, db: Database, settings: Settings, worker_id: str | None = None):
        super().__init__(db, settings, worker_id)
        self._claims = Batcher(self.claim_many, "claim-batches")
        self._records = Batcher(self.record_many, "record-batches")
        # A burst to a webhook at its cap parks a delivery per task, all at once.
        self._parks = Batcher(self.park_many, "park-batches")

    def claim(self, delivery_id: uuid.UUID) -> Claim | None:
        return self._claims.submit(delivery_id)

    def record(self, attempt: FinishedAttempt) -> bool:
        return _raised(self._records.submit(attempt))

    def park(self, delivery_id: uuid.UUID, reason: str, due: datetime | None = None) -> None:
        self._parks.submit((delivery_id, reason, due))


def _raised(outcome: bool | Exception) -> bool:
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def delivery_store(db: Database, settings: Settings, worker_id: str | None = None) -> DirectStore:
    """Batched where one statement takes many rows; one at a time elsewhere (SQLite has one
    writer anyway)."""
    if takes_batches(db.engine):
        return BatchedStore(db, settings, worker_id)
    return DirectStore(db, settings, worker_id)
