"""Tasks of one worker process waiting in their thread for a slot of their fast webhook.

A fast webhook at its cap frees a slot every few milliseconds. Rather than park such a delivery
in the database (a statement, then another to release it and a message to send it again), its
task waits here, up to WAIT_SECONDS: an attempt of this process that ends passes its slot
straight on to the oldest waiting task (`give`), and slots freed in other processes are tried
for every WAIT_SLICE. What waits here is only in memory: a task that gets nothing parks as any
other delivery at the cap does.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from shared.coordination.slots import Slot

# A fast webhook's attempts end within `slow_after` (1 s): one of them frees a slot by then,
# and a thread never waits longer (should the webhook turn slow, its cap shrinks and the
# waiting deliveries park).
WAIT_SECONDS = 1.0
# Slots freed in other processes pass on to nobody here: a waiting task tries for one this
# often.
WAIT_SLICE = 0.2
# A slot goes from task to task in one process for this long after it was taken, then it is
# freed for every process's waiting tasks: one process's tasks do not keep a webhook's slots
# to themselves while another's wait.
KEEP_SECONDS = 0.25


class _Waiter:
    def __init__(self):
        self.given = threading.Event()
        self.slot: Slot | None = None
        self.taken_at = 0.0  # when the slot given was taken (time.monotonic())


class SlotWaiters:
    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[_Waiter]] = {}  # webhook -> its tasks, oldest first

    def any(self, webhook: str) -> bool:
        return bool(self._waiting.get(webhook))

    def wait(
        self, webhook: str, try_free: Callable[[], Slot | None], free: Callable[[Slot], None]
    ) -> tuple[Slot, float] | None:
        """A slot given by an attempt of this process that ended, or one `try_free()` took
        (every WAIT_SLICE), within WAIT_SECONDS, with when it was taken; or None. `free`
        gives back a slot taken in the same moment as one was given."""
        waiter = _Waiter()
        with self._lock:
            self._waiting.setdefault(webhook, deque()).append(waiter)
        deadline = time.monotonic() + WAIT_SECONDS
        while not waiter.given.wait(WAIT_SLICE):
            last = time.monotonic() >= deadline
            taken = try_free()
            if taken is None and not last:
                continue
            if self._leave(webhook, waiter):
                return (taken, time.monotonic()) if taken is not None else None
            # Taken off the line just now: a slot is on its way, and one is enough.
            if taken is not None:
                free(taken)
            break
        waiter.given.wait()
        return waiter.slot, waiter.taken_at

    def give(self, webhook: str, slot: Slot, taken_at: float) -> bool:
        """Pass the slot on to the oldest task waiting for one; False if none waits now."""
        with self._lock:
            waiting = self._waiting.get(webhook)
            if not waiting:
                return False
            waiter = waiting.popleft()
            if not waiting:
                del self._waiting[webhook]
        waiter.slot, waiter.taken_at = slot, taken_at
        waiter.given.set()
        return True

    def _leave(self, webhook: str, waiter: _Waiter) -> bool:
        with self._lock:
            waiting = self._waiting.get(webhook)
            if waiting is None or waiter not in waiting:
                return False
            waiting.remove(waiter)
            if not waiting:
                del self._waiting[webhook]
            return True
