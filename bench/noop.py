"""What Celery alone costs per message: a task that does nothing, on the service's broker options.

celery -A bench.noop worker --pool=threads --concurrency=64

The same transport options as the service's worker (no acknowledgement emulation, results
ignored, prefetch 4) on its own Redis database (BASELINE_REDIS_URL). Draining a backlog of
these gives the rate one delivery per task message can never exceed on this machine.
"""

from __future__ import annotations

import os
import threading
import time

import redis
from celery import Celery

QUEUE = "noop"
DONE_KEY = "noop:done"  # tasks finished, added up every FLUSH seconds by each worker process
FLUSH = 0.05

app = Celery("noop", broker=os.environ.get("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/10"))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=4,
    worker_enable_remote_control=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"ack_emulation": False},
)


class _Finished:
    """Counts finished tasks in memory; a thread adds the count to Redis every FLUSH seconds.

    A message leaves Redis when a worker fetches it, so the queue's length says what was taken,
    not what ran; a Redis write per task would add to the cost being measured.
    """

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        self.thread = None

    def add(self) -> None:
        with self.lock:
            self.count += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._flush_forever, daemon=True)
                self.thread.start()

    def _flush_forever(self) -> None:
        client = redis.Redis.from_url(app.conf.broker_url)
        while True:
            time.sleep(FLUSH)
            with self.lock:
                count, self.count = self.count, 0
            if count:
                client.incrby(DONE_KEY, count)


_finished = _Finished()


@app.task(name="noop.nothing")
def nothing(number: int) -> None:
    _finished.add()
