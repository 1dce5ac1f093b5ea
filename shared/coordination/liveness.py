"""Which worker processes are alive, and whether Redis was emptied.

Each worker process writes a key that expires unless it is written again (`Heartbeat`); an
attempt in flight names the process that runs it, so the sweep declares the attempts of a dead
process lost within seconds instead of after their lease. A key written once and never
expiring (`epoch`) tells the sweep, when its value changed, that Redis lost its data (emptied,
or restarted without persistence): every message it held must be sent again.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable

import redis

log = logging.getLogger(__name__)

BEAT_SECONDS = 1.0
ALIVE_SECONDS = 5  # a process is dead once its key has not been written for this long
EPOCH = "webhooks:epoch"


def _key(worker_id: str) -> str:
    return f"worker:{worker_id}"


class Heartbeat:
    """This process's heartbeat, from a thread of its own."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self.worker_id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._beat()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """A clean stop: the process says it is gone, so what it held is sent again at once."""
        self._stop.set()
        try:
            self.redis.delete(_key(self.worker_id))
        except redis.RedisError:
            pass

    def _run(self) -> None:
        while not self._stop.wait(BEAT_SECONDS):
            self._beat()

    def _beat(self) -> None:
        try:
            self.redis.set(_key(self.worker_id), 1, ex=ALIVE_SECONDS)
        except redis.RedisError as exc:  # Redis is away: the next beat tries again
            log.debug("heartbeat not written: %s", type(exc).__name__)


def alive(client: redis.Redis, worker_ids: Iterable[str]) -> set[str]:
    """Those of `worker_ids` whose heartbeat is current."""
    ids = list(dict.fromkeys(worker_ids))
    if not ids:
        return set()
    pipe = client.pipeline(transaction=False)
    for worker_id in ids:
        pipe.exists(_key(worker_id))
    return {worker_id for worker_id, found in zip(ids, pipe.execute(), strict=True) if found}


def epoch(client: redis.Redis) -> str:
    """A value Redis keeps for as long as it keeps its data: a new one means it lost them
    since it was last read (the sweep remembers the last one in the database)."""
    current = client.get(EPOCH)
    if current is None:
        client.set(EPOCH, uuid.uuid4().hex, nx=True)
        current = client.get(EPOCH)
    return current.decode()
