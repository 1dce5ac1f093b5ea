"""Group commit: work submitted by many threads, done together when it overlaps.

A worker process runs many deliveries at once, and each claims its row and records its
attempt: two statements, each paying the driver, the round trip, the planner and a commit.
When requests overlap, one thread takes everything waiting and runs it as one statement, so
that cost is paid per batch instead of per delivery. Nothing waits on purpose: a request made
while nothing else is running runs at once in its own thread, and a batch grows only while
other work is running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future


class Batcher:
    """`submit(item)` returns `run(batch)[i]` for that item; `run` sees up to `max_batch` items.

    If `run` raises, every item of that batch raises the same exception in its own thread.
    """

    def __init__(self, run: Callable[[Sequence], Sequence], name: str, max_batch: int = 100):
        self._run = run
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._running = 0  # runs in progress: requests run at once, and the batch thread's

    def submit(self, item):
        with self._lock:
            alone = self._running == 0 and self._queue.empty()
            if alone:
                self._running += 1
        if alone:
            try:
                return self._run([item])[0]
            finally:
                with self._lock:
                    self._running -= 1
        future: Future = Future()
        self._queue.put((item, future))
        self._ensure_thread()
        return future.result()

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            with self._lock:
                self._running += 1
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._run_batch(batch)
            finally:
                with self._lock:
                    self._running -= 1

    def _run_batch(self, batch: list) -> None:
        try:
            results = self._run([item for item, _ in batch])
        except BaseException as exc:  # the submitters get it; this thread must live on
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
