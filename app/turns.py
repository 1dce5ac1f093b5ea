"""Turns at the API: a tenant runs at most PUBLISH_CONCURRENCY_PER_TENANT publishing requests
at once in a web process.

A web process runs its requests in threads that share one interpreter lock. A tenant that
publishes batches as fast as it can keeps as many threads busy as it has connections, and
another tenant's single event then waits for the lock behind each of them. A tenant's requests
beyond its share wait here for one of its own to end (they are not refused), so its burst costs
the others at most that share of the process. Tenants are told apart by their `apikey` header,
before it is checked (a digest of it, so no key outlives its request here). The operator's
requests (publishing for any wallet) do not take turns.
"""

from __future__ import annotations

import hashlib
import threading

from flask import Flask, g, request

from app.auth import TENANT_HEADER


class Turns:
    def __init__(self, per_caller: int):
        self.per_caller = per_caller
        self._lock = threading.Lock()
        self._callers: dict[str, list] = {}  # caller -> [its semaphore, requests in or at it]

    def enter(self, caller: str) -> None:
        """Wait for the caller's turn."""
        with self._lock:
            entry = self._callers.setdefault(caller, [threading.Semaphore(self.per_caller), 0])
            entry[1] += 1
        entry[0].acquire()

    def leave(self, caller: str) -> None:
        with self._lock:
            entry = self._callers[caller]
            entry[0].release()
            entry[1] -= 1
            if entry[1] == 0:  # nothing of it runs or waits: its entry goes
                del self._callers[caller]


def _tenant() -> str | None:
    key = request.headers.get(TENANT_HEADER)
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest() if key else None


def init_app(app: Flask, per_tenant: int) -> None:
    """A tenant's publishing requests (POST under /events) take turns."""
    if per_tenant <= 0:
        return
    turns = Turns(per_tenant)

    def enter():
        if request.method == "POST" and "/events" in request.path:
            tenant = _tenant()
            if tenant is not None:
                turns.enter(tenant)
                g.turn = tenant

    def leave(_exc=None):
        turn = g.pop("turn", None)
        if turn is not None:
            turns.leave(turn)

    app.before_request(enter)
    app.teardown_request(leave)
