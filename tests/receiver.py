"""A real HTTP receiver for tests: records every request and answers as each path is told.
Given a server TLS context it is an HTTPS receiver (one that may demand a client certificate)."""

from __future__ import annotations

import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the request arrived


@dataclass
class Behaviour:
    statuses: list[int] = field(default_factory=list)  # answered in order, then `then`
    then: int = 200
    delay: float = 0.0  # seconds before answering
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After
    trickle: float = 0.0  # > 0: the body comes one byte every `trickle` seconds, for minutes
    # The status for a request, from its headers and body (overrides `statuses` and `then`).
    decide: Callable[[dict, bytes], int] | None = None
    running: int = 0  # requests being answered now
    most_running: int = 0  # the most ever answered at once
    # Judges each request by its headers: a status to answer instead, or None to go on.
    check: Callable[[dict[str, str]], int | None] | None = None


class Receiver:
    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None):
        self.requests: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The body goes out as a segment of its own after the headers: without this, the
            # sender's delayed acknowledgement holds every answer back by some 40 ms.
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, behaviour = receiver._record(self.path, dict(self.headers), body)
                try:
                    if behaviour.delay:
                        time.sleep(behaviour.delay)
                finally:
                    with receiver._lock:
                        behaviour.running -= 1
                self.send_response(status)
                if behaviour.location:
                    self.send_header("Location", behaviour.location)
                for name, value in behaviour.headers.items():
                    self.send_header(name, value)
                if behaviour.trickle:
                    self._trickle(behaviour.trickle)
                    return
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def _trickle(self, every: float) -> None:
                self.send_header("Content-Length", "100000")
                self.end_headers()
                try:
                    for _ in range(100000):
                        self.wfile.write(b".")
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # A client that failed the TLS handshake (no or a wrong client certificate):
                # counted, not printed.
                if isinstance(sys.exc_info()[1], ssl.SSLError):
                    receiver.refused_handshakes += 1
                else:
                    super().handle_error(request, client_address)

        self.refused_handshakes = 0
        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            # The handshake happens on the handler's thread, at its first read: a client that
            # fails it never reaches do_POST, and never reaches `requests`.
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def behave(self, path: str, **kwargs) -> None:
        self.behaviours[path] = Behaviour(**kwargs)

    def _record(self, path, headers, body):
        with self._arrived:
            self.requests.append(Received(path, headers, body, time.time()))
            behaviour = self.behaviours.setdefault(path, Behaviour())
            if behaviour.decide is not None:
                status = behaviour.decide(headers, body)
            else:
                status = behaviour.statuses.pop(0) if behaviour.statuses else behaviour.then
            if behaviour.check is not None:
                status = behaviour.check(headers) or status
            behaviour.running += 1
            behaviour.most_running = max(behaviour.most_running, behaviour.running)
            self._arrived.notify_all()
        return status, behaviour

    def first_of_each_fails(self, path: str, status: int = 500) -> None:
        """Each event's first request to `path` gets `status`, its later ones 200."""
        seen: set[str] = set()

        def decide(headers: dict, _body: bytes) -> int:
            event = {name.lower(): value for name, value in headers.items()}.get("webhook-id")
            if event in seen:
                return 200
            seen.add(event)
            return status

        self.behave(path, decide=decide)

    def most_running(self, path: str) -> int:
        """The most requests to `path` answered at once so far."""
        with self._lock:
            behaviour = self.behaviours.get(path)
            return behaviour.most_running if behaviour else 0

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len([r for r in self.requests if r.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
        return self.at(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
