"""A load generator for POST /cloud-agent/events, run in processes of its own.

python -m bench.load --url URL --keys K1,K2 --duration S --threads T [--rate R] [--count N]
    --out FILE

Threads with one keep-alive http.client connection each. Without --rate each thread posts as
fast as the API answers (closed loop, for throughput); with --rate a pacer releases requests at
fixed times and idle threads send them (open loop, for latency). Tenant keys take turns. With
--count (closed loop only) the process stops after N requests in all, warm-up included, or at
the end of --duration, whichever comes first: a burst of a fixed size.
Writes {"requests": [[sent_at, seconds, status, event_id, key_index], ...], "late": n,
"unsent": n, "start", "until", "finished", "warmup": {"requests": n, "accepted": n}}; slots
still unsent 5 s after the end are dropped. With --warmup S the same load runs for S seconds
before --start-at and those requests are only counted, not reported: the first requests on
fresh connections and fresh server threads (connecting to the database, first use of each
statement) would otherwise stand for the service's steady state.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import threading
import time
import uuid
from urllib.parse import urlsplit

LATE = 0.02  # a request sent this long after its slot means the client fell behind
GIVE_UP = 5.0  # slots still unsent this long after the end are dropped: the bench stays bounded


def event_body() -> bytes:
    data = {
        "connectionId": str(uuid.uuid4()),
        "label": "Connect with Alice",
        "role": "Inviter",
        "state": "InvitationGenerated",
    }
    return json.dumps({"type": "ConnectionUpdated", "data": data}).encode()


class Client:
    def __init__(self, url: str, keys: list[str]):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.keys = keys
        self.local = threading.local()

    def post(self, index: int) -> list:
        headers = {"Content-Type": "application/json", "apikey": self.keys[index % len(self.keys)]}
        body = event_body()
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=60
                )
            sent = time.time()
            try:
                conn.request("POST", self.path, body, headers)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if reused and attempt == 1:
                    continue  # the server closed an idle keep-alive connection: send again
                return [sent, time.time() - sent, 0, None, index % len(self.keys)]
            took = time.time() - sent
            event_id = json.loads(data)["id"] if response.status == 202 else None
            return [sent, took, response.status, event_id, index % len(self.keys)]
        raise AssertionError("unreachable")


def closed_loop(
    client: Client, threads: int, until: float, offset: int, count: int = 0
) -> tuple[list, int]:
    """Each thread posts again as soon as it has its answer, until `until` or, with `count`,
    until the process has sent that many requests."""
    results: list = []
    left = [count]
    lock = threading.Lock()

    def take() -> bool:
        if not count:
            return True
        with lock:
            left[0] -= 1
            return left[0] >= 0

    def run(number: int) -> None:
        index = offset + number
        while time.time() < until and take():
            results.append(client.post(index))
            index += threads

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results, [0, 0]


def open_loop(client: Client, threads: int, begin: float, until: float, rate: float, start: float):
    """Requests due at `rate` from `begin` to `until`; lateness is counted from `start` on."""
    slots: queue.Queue = queue.Queue()
    results: list = []
    late = [0, 0]  # sent late, never sent

    def run() -> None:
        while (slot := slots.get()) is not None:
            index, due = slot
            now = time.time()
            if now > until + GIVE_UP:
                late[1] += 1
                continue
            if now - due > LATE and due >= start:
                late[0] += 1
            results.append(client.post(index))

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    index = 0
    while (due := begin + index / rate) < until:
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        slots.put((index, due))
        index += 1
    for _ in pool:
        slots.put(None)
    for thread in pool:
        thread.join()
    return results, late


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--keys", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to begin at")
    parser.add_argument("--offset", type=int, default=0, help="first key index (closed loop)")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of load not reported")
    parser.add_argument("--count", type=int, default=0, help="requests in all (closed loop)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    client = Client(args.url, args.keys.split(","))
    start = max(args.start_at, time.time() + args.warmup)
    begin = start - args.warmup
    time.sleep(max(0.0, begin - time.time()))
    until = start + args.duration
    if args.rate > 0:
        results, late = open_loop(client, args.threads, begin, until, args.rate, start)
    else:
        results, late = closed_loop(client, args.threads, until, args.offset, args.count)
    warmup = [r for r in results if r[0] < start]
    with open(args.out, "w") as out:
        json.dump(
            {
                "start": start,
                "until": until,
                "finished": time.time(),
                "requests": [r for r in results if r[0] >= start],
                "late": late[0],
                "unsent": late[1],
                "warmup": {
                    "requests": len(warmup),
                    "accepted": sum(1 for r in warmup if r[2] == 202),
                },
            },
            out,
        )


if __name__ == "__main__":
    main()
