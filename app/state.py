"""What every request needs from the process: settings, the database, and task dispatch."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from flask import current_app

from shared.db import Database
from shared.metrics import MetricsRecorder
from shared.publishing import Dispatch
from shared.services.bootstrap import api_key_salt
from shared.settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    dispatch: Dispatch | None
    metrics: MetricsRecorder
    _salt: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def salt(self, session) -> str:
        # The salt never changes once stored, so one read per process is enough.
        if self._salt is None:
            with self._lock:
                if self._salt is None:
                    self._salt = api_key_salt(session, self.settings)
        return self._salt


def state() -> AppState:
    return current_app.extensions["cloud_agent_webhooks"]
