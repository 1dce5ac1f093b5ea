"""A hard deadline for one delivery attempt: name resolution, connect, TLS, sending and the
whole response, whatever the receiver trickles.

Socket timeouts bound each read, not the attempt: a receiver that sends a byte every half
second keeps a plain timeout waiting forever, and name resolution has no timeout at all. So
each attempt registers the sockets it opens or reuses, and one watchdog thread per process
shuts them down when the attempt's deadline passes; the blocked read returns at once and the
attempt is recorded as a timeout. Name resolution runs on a small pool of threads and is
waited for only until the deadline.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout


class DeadlineExceeded(TimeoutError):
    """The attempt's deadline passed."""


class Deadline:
    """One attempt's deadline and the sockets it uses (by file descriptor)."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds  # on the monotonic clock
        self.expired = False
        self._fds: set[int] = set()
        self._done = False
        self._lock = threading.Lock()

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("deadline passed")
        return left

    def use(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise DeadlineExceeded("deadline passed")
            self._fds.add(sock.fileno())

    def forget(self, sock: socket.socket) -> None:
        """Before closing a socket: its descriptor may be reused by another connection."""
        with self._lock:
            self._fds.discard(sock.fileno())

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._fds.clear()

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for fd in self._fds:
                _shutdown(fd)
            self._fds.clear()


def _shutdown(fd: int) -> None:
    # The descriptor stays open (the owner closes it); only its traffic stops.
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class Watchdog:
    """Expires attempts at their deadlines, from one thread."""

    def __init__(self):
        self._heap: list = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                _, _, deadline = heapq.heappop(self._heap)
            deadline.expire()


_current = threading.local()
# More threads than slow webhooks may hold at once in a worker process (the slow share), so a
# name server that hangs for some webhooks leaves resolvers for the others.
_resolver = ThreadPoolExecutor(max_workers=48, thread_name_prefix="resolve")
# The lookup running for each (host, port): every attempt to that host waits on it rather than
# starting another, so a host whose name server hangs holds one resolver thread however many
# attempts it has, and a lookup that outlives its attempt serves the next one instead of
# piling up beside it.
_lookups: dict[tuple[str, int], Future] = {}
_lookups_lock = threading.Lock()


def current() -> Deadline | None:
    """The deadline of the attempt this thread is running, if any."""
    return getattr(_current, "deadline", None)


def set_current(deadline: Deadline | None) -> None:
    _current.deadline = deadline


def resolve(host: str, port: int, deadline: Deadline | None, lookup=socket.getaddrinfo) -> list:
    """`lookup` (getaddrinfo), waited for at most until the attempt's deadline; attempts to the
    same host and port share one lookup."""
    if deadline is None or _is_address(host):
        return lookup(host, port, type=socket.SOCK_STREAM)
    key = (host, port)
    started = False
    with _lookups_lock:
        future = _lookups.get(key)
        if future is None:
            future = _resolver.submit(lookup, host, port, type=socket.SOCK_STREAM)
            _lookups[key] = future
            started = True
    if started:  # outside the lock: a lookup already done runs its callback here and now
        future.add_done_callback(lambda done: _forget(key, done))
    try:
        return future.result(timeout=deadline.remaining())
    except FutureTimeout:
        raise DeadlineExceeded("name resolution did not finish in time") from None


def _forget(key: tuple[str, int], done: Future) -> None:
    with _lookups_lock:
        if _lookups.get(key) is done:
            del _lookups[key]


def _is_address(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
    except OSError:
        return False
    return True
