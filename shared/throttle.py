"""A cap on the worker threads one slow receiver may hold.

A receiver that hangs holds a thread for the whole timeout of each attempt. Without a cap,
one such receiver soon holds every thread of a worker and every other wallet's deliveries wait
behind it. So a receiver may hold at most `limit` threads unless it has shown itself fast: an
attempt finished within `slow_after` seconds in the last `remember` seconds, none took longer
since, and none is taking longer now. A receiver not heard from yet is capped too, so that one
that hangs from its very first event cannot take every thread before it is found out. Its
further deliveries are put back for later without spending an attempt. A fast receiver meets
the cap only in a burst before its first answer.

Counted per worker process, in memory: nothing to leak when a worker dies, and no round trip
on the hot path. With several worker processes each keeps its own threads free.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def receiver_key(url: str) -> str:
    """scheme://host:port: what the cap counts by (the port is empty when the URL has none)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


@dataclass
class _Receiver:
    running: dict[object, float] = field(default_factory=dict)  # token -> start
    slow_until: float = 0.0  # an attempt took longer than slow_after: capped until then
    fast_until: float = 0.0  # an attempt finished quickly: uncapped until then, unless slow


class ReceiverLimiter:
    def __init__(self, limit: int, slow_after: float = 1.0, remember: float = 30.0):
        self.limit = limit
        self.slow_after = slow_after
        self.remember = remember
        self._lock = threading.Lock()
        self._receivers: dict[str, _Receiver] = {}

    def acquire(self, url: str) -> object | None:
        """A token to release after the attempt, or None when the receiver must wait.

        `url` may be the delivery's URL or its receiver_key (the key of a key is itself).
        """
        now = time.monotonic()
        with self._lock:
            receiver = self._receivers.setdefault(receiver_key(url), _Receiver())
            if len(receiver.running) >= self.limit and self._is_capped(receiver, now):
                return None
            token = object()
            receiver.running[token] = now
            return token

    def release(self, url: str, token: object, answered: bool = True) -> None:
        """Give the share back; `answered=False` when no request was made (nothing to judge)."""
        key = receiver_key(url)
        now = time.monotonic()
        with self._lock:
            receiver = self._receivers.get(key)
            if receiver is None:
                return
            started = receiver.running.pop(token, now)
            if now - started > self.slow_after:
                receiver.slow_until = now + self.remember
                receiver.fast_until = 0.0
            elif answered:
                receiver.fast_until = now + self.remember
            if not receiver.running and max(receiver.slow_until, receiver.fast_until) <= now:
                del self._receivers[key]

    def _is_capped(self, receiver: _Receiver, now: float) -> bool:
        if receiver.slow_until > now:
            return True
        oldest = min(receiver.running.values(), default=now)
        if now - oldest > self.slow_after:
            return True
        return receiver.fast_until <= now  # not (recently) seen fast: not trusted yet
