"""Caps on the attempts running at once in one worker process, so that no webhook can take the
threads the others need.

A webhook that hangs holds a thread for the whole timeout of each attempt. So a webhook may run
at most `per_webhook` attempts at once unless it has shown itself fast (its receiver answered
within `slow_after` seconds in the last `remember` seconds, none took longer since, and no
request is taking longer now); a webhook not heard from yet counts as slow, so one that hangs
from its very first event is capped before it is found out. Slow and unproven webhooks together
may hold at most `slow_share` threads (besides one first attempt each for webhooks not heard
from yet, a quarter of that share for all of them): however many of them hang, the others
always find a thread. Every host also gets at most `per_host` attempts at once, to protect the
receivers.

What is counted is what runs now, in memory: nothing to leak when a worker dies, no round trip
on the hot path. A webhook's entry is dropped once nothing runs and nothing is remembered.

Only the receiver's own time counts: the request, from `sending` to `answered`. The time an
attempt spends on this side (waiting for a database connection or for its claim, on a busy
machine) says nothing about the receiver, and counting it made a backlog's healthy webhook look
slow exactly when the caps cost most.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


def host_key(url: str) -> str:
    """scheme://host:port: what the per-host cap counts by (the port is empty when unset)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


@dataclass
class _Webhook:
    # token -> when its request started; None while the attempt is still on this side
    running: dict[object, float | None] = field(default_factory=dict)
    slow_until: float = 0.0  # an attempt took longer than slow_after: capped until then
    fast_until: float = 0.0  # an attempt finished quickly: uncapped until then, unless slow


_tokens = itertools.count()


FAST, SLOW, PROBATION = "fast", "slow", "probation"


@dataclass
class Lease:
    webhook: str
    host: str
    share: str  # FAST, SLOW (counted in the slow share) or PROBATION (a first attempt)
    token: int = field(default_factory=lambda: next(_tokens))


class WebhookLimiter:
    def __init__(
        self,
        per_webhook: int,
        per_host: int,
        slow_share: int,
        slow_after: float = 1.0,
        remember: float = 30.0,
        probation_share: int | None = None,
    ):
        self.per_webhook = per_webhook
        self.per_host = per_host
        self.slow_share = slow_share
        # A webhook not heard from yet gets one attempt outside the slow share (these together
        # hold at most `probation_share` threads), so a new healthy webhook is not held up by
        # hanging ones; if it hangs, its first timeout makes it slow, and the slow share caps it.
        self.probation_share = probation_share or max(1, slow_share // 4)
        self.slow_after = slow_after
        self.remember = remember
        self._lock = threading.Lock()
        self._webhooks: dict[str, _Webhook] = {}
        self._hosts: dict[str, int] = {}
        self._held = {SLOW: 0, PROBATION: 0}
        self._acquired = 0

    def acquire(self, webhook: str, host: str) -> Lease | None:
        """A lease to release after the attempt, or None when the webhook must wait."""
        now = time.monotonic()
        with self._lock:
            self._acquired += 1
            if self._acquired % 1000 == 0:
                self._drop_stale(now)
            state = self._webhooks.setdefault(webhook, _Webhook())
            share = self._share(state, now)
            if share is None or self._hosts.get(host, 0) >= self.per_host:
                return None
            lease = Lease(webhook, host, share)
            state.running[lease.token] = None
            self._hosts[host] = self._hosts.get(host, 0) + 1
            if share in self._held:
                self._held[share] += 1
            return lease

    def note_fast(self, webhook: str) -> None:
        """Every worker's slots say the webhook answers quickly: trusted as fast here too, as
        if this process had seen it answer (a slow answer here still makes it slow)."""
        with self._lock:
            state = self._webhooks.setdefault(webhook, _Webhook())
            state.fast_until = max(state.fast_until, time.monotonic() + self.remember)

    def sending(self, lease: Lease) -> None:
        """The attempt's request starts now: from here until `answered`, its time is the
        receiver's."""
        with self._lock:
            state = self._webhooks.get(lease.webhook)
            if state is not None and lease.token in state.running:
                state.running[lease.token] = time.monotonic()

    def answered(self, lease: Lease, took: float) -> None:
        """The receiver answered (or failed) after `took` seconds: judge the webhook by it."""
        now = time.monotonic()
        with self._lock:
            state = self._webhooks.get(lease.webhook)
            if state is None:
                return
            if lease.token in state.running:
                state.running[lease.token] = None  # recording the outcome is our time again
            if took > self.slow_after:
                state.slow_until = now + self.remember
                state.fast_until = 0.0
            else:
                state.fast_until = now + self.remember

    def release(self, lease: Lease) -> None:
        """Give the lease back. One released without `answered` made no request: nothing to
        judge the webhook by (only an answer may lift the cap on one not heard from yet)."""
        now = time.monotonic()
        with self._lock:
            if lease.share in self._held:
                self._held[lease.share] -= 1
            remaining = self._hosts.get(lease.host, 1) - 1
            if remaining:
                self._hosts[lease.host] = remaining
            else:
                self._hosts.pop(lease.host, None)
            state = self._webhooks.get(lease.webhook)
            if state is None:
                return
            state.running.pop(lease.token, None)
            if not state.running and max(state.slow_until, state.fast_until) <= now:
                del self._webhooks[lease.webhook]

    def has_room(self, webhook: str) -> bool:
        """Whether an attempt of this webhook would be let through now (its host aside)."""
        now = time.monotonic()
        with self._lock:
            return self._share(self._webhooks.get(webhook) or _Webhook(), now) is not None

    def tracked(self) -> int:
        """How many webhooks this limiter remembers, once the stale ones are dropped."""
        with self._lock:
            self._drop_stale(time.monotonic())
            return len(self._webhooks)

    def _drop_stale(self, now: float) -> None:
        stale = [
            key
            for key, state in self._webhooks.items()
            if not state.running and max(state.slow_until, state.fast_until) <= now
        ]
        for key in stale:
            del self._webhooks[key]

    def _share(self, state: _Webhook, now: float) -> str | None:
        """Which share an attempt of this webhook would be counted in; None: no room."""
        if not self._is_slow(state, now):
            return FAST
        unheard = state.slow_until <= now and not state.running
        if unheard and self._held[PROBATION] < self.probation_share:
            return PROBATION
        if len(state.running) < self.per_webhook and self._held[SLOW] < self.slow_share:
            return SLOW
        return None

    def _is_slow(self, state: _Webhook, now: float) -> bool:
        if state.slow_until > now:
            return True
        oldest = min((t for t in state.running.values() if t is not None), default=now)
        if now - oldest > self.slow_after:
            return True
        return state.fast_until <= now  # not (recently) seen fast: not trusted yet
