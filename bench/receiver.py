"""The receivers the benchmarks deliver to, in a process of their own.

python -m bench.receiver [--fast-port P] [--stalled N]
    prints "ready <fast port> <stalled port> ...", then serves until killed

- fast: HTTP/1.1 with keep-alive and pipelining on raw asyncio protocols; answers every POST
  with an empty 200 at once and records (path, webhook-id, arrival time). It must take far more
  than the workers can send (the `receiver` row of the table checks that).
- fast, paths starting with /stall: never answered (a hanging webhook on the same host as the
  healthy ones); the connection then answers nothing more.
- fast, paths starting with /slow<ms> (e.g. /slow1500): an empty 200 after that many
  milliseconds (a slow but healthy receiver); the connection's next request waits its turn.
  The most such requests of a path open at once is kept (`peak_concurrent` in its stats).
- stalled: N ports (8 by default: as many hanging hosts) that accept connections, read what
  comes, and never answer.

Control, on the fast port: GET /_stats (count, first and last arrival per path),
GET /_arrivals?path=/hook (every [webhook-id, time] recorded on that path), POST /_reset.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
MAX_HEAD = 64 * 1024
SLOW = re.compile(r"/slow(\d+)")


class Recorder:
    def __init__(self):
        self.paths: dict[str, list[tuple[str, float]]] = {}
        self.open: dict[str, int] = {}  # slow path -> requests not answered yet
        self.peak: dict[str, int] = {}  # slow path -> the most open at once since the reset

    def stats(self) -> dict:
        return {
            path: {
                "count": len(rows),
                "first": rows[0][1],
                "last": rows[-1][1],
                "peak_concurrent": self.peak.get(path),
            }
            for path, rows in self.paths.items()
            if rows
        }

    def opened(self, path: str) -> None:
        self.open[path] = self.open.get(path, 0) + 1
        self.peak[path] = max(self.peak.get(path, 0), self.open[path])

    def closed(self, path: str) -> None:
        self.open[path] -= 1

    def reset(self) -> None:
        self.paths.clear()
        self.peak = {path: count for path, count in self.open.items() if count}


class FastProtocol(asyncio.Protocol):
    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        self.buffer = b""
        self.transport = None
        self.stalled = False
        self.late: tuple[asyncio.TimerHandle, str] | None = None  # a slow answer due

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.late is not None:  # the sender gave up before the slow answer
            timer, path = self.late
            timer.cancel()
            self.recorder.closed(path)
            self.late = None

    def data_received(self, data: bytes) -> None:
        if self.stalled:
            return
        self.buffer = self.buffer + data if self.buffer else data
        if self.late is None:
            self.serve(time.time())

    def serve(self, arrived: float) -> None:
        buffer = self.buffer
        replies = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self.transport.close()
                    return
                break
            head = buffer[:end]
            lowered = head.lower()
            length = _header_int(lowered, b"\r\ncontent-length:")
            total = end + 4 + length
            if len(buffer) < total:
                break
            reply = self.handle(head, lowered, arrived)
            if reply is None:  # a stalling path: nothing more on this connection
                self.stalled = True
                break
            buffer = buffer[total:]
            if isinstance(reply, tuple):  # a slow path: later requests wait for its answer
                self.answer_later(*reply)
                break
            replies.append(reply)
        self.buffer = buffer
        if replies:
            self.transport.write(b"".join(replies))

    def answer_later(self, path: str, seconds: float) -> None:
        self.recorder.opened(path)
        timer = asyncio.get_running_loop().call_later(seconds, self.answer, path)
        self.late = (timer, path)

    def answer(self, path: str) -> None:
        self.late = None
        self.recorder.closed(path)
        if self.transport.is_closing():
            return
        self.transport.write(OK)
        if self.buffer:
            self.serve(time.time())

    def handle(self, head: bytes, lowered: bytes, arrived: float):
        """The reply; None for a stalling path; (path, seconds) for a slow one."""
        method, target = head.split(b" ", 2)[:2]
        path = target.decode("latin-1")
        if path.startswith("/_"):
            return self.control(method, path)
        start = lowered.find(b"\r\nwebhook-id:")
        webhook_id = ""
        if start >= 0:
            stop = lowered.find(b"\r\n", start + 2)
            webhook_id = head[start + 13 : stop if stop >= 0 else None].strip().decode()
        self.recorder.paths.setdefault(path, []).append((webhook_id, arrived))
        if path.startswith("/stall"):
            return None
        slow = SLOW.match(path)
        return (path, int(slow.group(1)) / 1000) if slow else OK

    def control(self, method: bytes, target: str) -> bytes:
        url = urlsplit(target)
        if url.path == "/_reset" and method == b"POST":
            self.recorder.reset()
            payload = {}
        elif url.path == "/_arrivals":
            path = parse_qs(url.query).get("path", ["/hook"])[0]
            payload = self.recorder.paths.get(path, [])
        else:
            payload = self.recorder.stats()
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body


class StalledProtocol(asyncio.Protocol):
    """Reads and never answers: each request costs the sender its whole timeout."""

    def data_received(self, data: bytes) -> None:
        pass


def _header_int(lowered: bytes, name: bytes) -> int:
    start = lowered.find(name)
    if start < 0:
        return 0
    stop = lowered.find(b"\r\n", start + 2)
    return int(lowered[start + len(name) : stop if stop >= 0 else None])


async def serve(fast_port: int = 0, stalled_count: int = 8) -> None:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    servers = [
        await loop.create_server(
            lambda: FastProtocol(recorder), "127.0.0.1", fast_port, backlog=4096
        )
    ]
    for _ in range(stalled_count):
        servers.append(await loop.create_server(StalledProtocol, "127.0.0.1", 0, backlog=4096))
    ports = [str(server.sockets[0].getsockname()[1]) for server in servers]
    print("ready " + " ".join(ports), flush=True)
    await asyncio.Event().wait()


class ReceiverClient:
    """The bench's side of the control paths."""

    def __init__(self, fast_port: int, stalled_ports: list[int]):
        self.fast_port = fast_port
        self.stalled_ports = stalled_ports

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.fast_port}{path}"

    def stalled_url(self, path: str = "/stalled", host: int = 0) -> str:
        return f"http://127.0.0.1:{self.stalled_ports[host]}{path}"

    def _call(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            self.url(path), method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self._call("/_reset", "POST")

    def stats(self, path: str) -> dict:
        empty = {"count": 0, "first": None, "last": None, "peak_concurrent": None}
        return self._call("/_stats").get(path, empty)

    def all_arrivals(self, path: str) -> list[tuple[str, float]]:
        """Every request recorded on `path`: [webhook-id, arrival time], repeats included."""
        return self._call(f"/_arrivals?path={path}")

    def arrivals(self, path: str) -> dict[str, float]:
        """webhook-id → the first arrival time of a request carrying it."""
        first: dict[str, float] = {}
        for webhook_id, arrived in self.all_arrivals(path):
            first.setdefault(webhook_id, arrived)
        return first


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--fast-port", type=int, default=0)
    parser.add_argument("--stalled", type=int, default=8, help="hanging hosts (ports)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.fast_port, args.stalled))
    except KeyboardInterrupt:
        pass
