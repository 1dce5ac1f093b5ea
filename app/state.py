"""What every request needs from the process: settings, the database, and task dispatch."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import current_app

from shared.db import Database
from shared.metrics import MetricsRecorder
from shared.outbox import Dispatch, send_after_commit
from shared.publishing import PublishedBatch, PublishedEvent
from shared.services.bootstrap import api_key_salt
from shared.services.tenancy import wallet_for_api_key
from shared.services.webhooks import delete_webhook, detach_deliveries
from shared.settings import Settings
from shared.store.rows import Outgoing
from shared.tracing import NoTracing

if TYPE_CHECKING:
    from shared.tracing_export import ExportedTracing

# How long a process trusts an API key it has checked. Every publish would otherwise pay a
# database round trip for authentication; a removed key stops working within this time.
API_KEY_CACHE_SECONDS = 5.0


@dataclass
class AppState:
    settings: Settings
    db: Database
    dispatch: Dispatch | None
    metrics: MetricsRecorder
    tracing: NoTracing | ExportedTracing = field(default_factory=NoTracing)
    _salt: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _known_keys: dict[str, tuple[uuid.UUID, float]] = field(default_factory=dict)
    # Counts forget_api_keys() calls, so a lookup that read the database before one of them
    # does not put its answer back into the cache after it.
    _forgotten: int = 0

    def send(self, outgoing: Sequence[Outgoing]) -> None:
        """After the commit: send the tasks of these deliveries (or leave them to the sweep)."""
        send_after_commit(self.db, self.dispatch, outgoing)

    def delete_webhook(self, wallet_id: uuid.UUID, webhook_id: uuid.UUID) -> None:
        """Its deliveries let go of it in short transactions, then the row goes: no statement
        holds the webhook (and the publishes that read it) for long."""
        self.db.in_batches(lambda session: detach_deliveries(session, wallet_id, webhook_id))
        with self.db.transaction() as session:
            delete_webhook(session, wallet_id, webhook_id)

    def published(self, outcome: PublishedEvent | PublishedBatch) -> None:
        """After a publish's commit: send its tasks and count its events."""
        self.send(outcome.deliveries)
        self.metrics.events_published(outcome.types)

    def salt(self, session) -> str:
        # The salt never changes once stored, so one read per process is enough.
        if self._salt is None:
            with self._lock:
                if self._salt is None:
                    self._salt = api_key_salt(session, self.settings)
        return self._salt

    def forget_api_keys(self) -> None:
        """After a key or entity is removed, or an entity moved to another wallet: this process
        stops trusting what it knew of keys at once (others within API_KEY_CACHE_SECONDS)."""
        self._forgotten += 1
        self._known_keys.clear()

    def wallet_for_api_key(self, api_key: str) -> uuid.UUID | None:
        now = time.monotonic()
        known = self._known_keys.get(api_key)
        if known is not None and known[1] > now:
            return known[0]
        forgotten = self._forgotten
        with self.db.session() as session:
            wallet_id = wallet_for_api_key(session, self.salt(session), api_key)
        if wallet_id is not None and forgotten == self._forgotten:
            if len(self._known_keys) > 10_000:
                self._known_keys.clear()  # a crude bound; the cache refills itself
            self._known_keys[api_key] = (wallet_id, now + API_KEY_CACHE_SECONDS)
        return wallet_id


def state() -> AppState:
    return current_app.extensions["cloud_agent_webhooks"]
