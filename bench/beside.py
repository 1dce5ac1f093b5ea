"""One tenant's steady stream beside something another tenant does: the machinery of the
fairness, slow_healthy and locks scenarios.

The stack runs as the Procfile runs it (web, workers, beat). The steady tenant publishes at a
fixed rate through the API (bench.load, open loop, after the warm-up) for `duration` +
`window` seconds; `duration` seconds into it, the disturbance runs in a thread of the bench
and says when it began and ended. The steady tenant's requests are then split by when they
were sent: before the disturbance (the yardstick, measured in the same run), while it lasted,
and after it.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import threading
import time
from collections.abc import Callable
from queue import Empty, Queue

from bench.context import Context
from bench.fixtures import Tenant, clear_events, connection_event, flush_redis, make_tenant
from bench.paced import _load, _ms, _wait_for
from bench.procs import free_port
from bench.report import percentile
from bench.stack import Stack

BATCH_SIZE = 100  # events per POST /events/batch, its most
BURST_THREADS = 8  # as many connections as gunicorn has threads per process
STEADY_THREADS = 8
START_MARGIN = 4.0  # seconds for the load process to start before its warm-up
SWEEP_SENT = re.compile(r"sweep sent (\d+) deliveries")


def tenant(ctx: Context, name: str, path: str, rate_limit: int | None = None) -> Tenant:
    """The tenant `name`, with one webhook on the fast receiver's `path`, made on first use."""
    if name not in ctx.tenants:
        url = ctx.receiver.url(path)
        ctx.tenants[name] = make_tenant(ctx.db, ctx.settings, name, url, rate_limit=rate_limit)
    return ctx.tenants[name]


def call(port: int, method: str, path: str, key: str, body: dict | None = None):
    """(status, decoded answer) of one API request as the tenant whose key this is."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"Content-Type": "application/json", "apikey": key}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def publish_batches(port: int, key: str, count: int, threads: int = BURST_THREADS) -> dict:
    """`count` events published at once as batches of BATCH_SIZE by `threads` keep-alive
    clients: when the first was sent, when the last was accepted, the events' ids."""
    batches: Queue = Queue()
    for start in range(0, count, BATCH_SIZE):
        batches.put(min(BATCH_SIZE, count - start))
    ids: list[str] = []
    refused: list[int] = []
    began = time.time()

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/json", "apikey": key}
        while True:
            try:
                size = batches.get_nowait()
            except Empty:
                break
            events = [{"type": "ConnectionUpdated", "data": connection_event()}] * size
            conn.request("POST", "/cloud-agent/events/batch", json.dumps({"events": events}),
                         headers)  # fmt: skip
            response = conn.getresponse()
            data = response.read()
            if response.status == 202:
                ids.extend(envelope["id"] for envelope in json.loads(data)["events"])
            else:
                refused.append(response.status)
        conn.close()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {"began": began, "accepted_at": time.time(), "ids": ids, "refused": refused}


def wait_arrivals(ctx: Context, path: str, ids: set[str], timeout: float) -> dict[str, float]:
    """First arrival of each of `ids` on `path`, waiting at most `timeout` seconds for all."""
    deadline = time.monotonic() + timeout
    while ctx.receiver.stats(path)["count"] < len(ids) and time.monotonic() < deadline:
        time.sleep(0.5)
    return _wait_for(ctx, path, ids, max(0.0, deadline - time.monotonic()))


def steady_beside(
    ctx: Context,
    name: str,
    steady: Tenant,
    path: str,
    rate: float,
    disturb: Callable[[int], dict],
    stack: Stack | None = None,
    prepare: Callable[[], None] | None = None,
) -> dict:
    """The steady tenant at `rate` for duration + window seconds, `disturb(port)` run after
    `duration` seconds; the steady tenant's figures before, during and after it. `prepare`
    runs on the emptied database before the stack starts."""
    opts = ctx.options
    stack = stack or ctx.stack
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    ctx.receiver.reset()
    if prepare is not None:
        prepare()
    port = free_port()
    procs = []
    disturbance: dict = {}
    try:
        procs.append(stack.web(port))
        workers = stack.workers(opts.workers)
        procs += workers
        procs.append(stack.beat())
        for worker in workers:
            worker.wait_for_log(" ready.", 90)
        start = time.time() + START_MARGIN + opts.warmup
        seconds = opts.duration + opts.window
        command = _load(ctx, port, [steady.api_key], rate, STEADY_THREADS, seconds, start)

        def run_disturbance() -> None:
            time.sleep(max(0.0, start + opts.duration - time.time()))
            try:
                disturbance.update(disturb(port))
            except Exception as exc:  # reported with the figures; the steady load goes on
                disturbance["error"] = f"{type(exc).__name__}: {exc}"

        thread = threading.Thread(target=run_disturbance, daemon=True)
        thread.start()
        out = ctx.run_jobs(name, [command], START_MARGIN + opts.warmup + seconds + 90)[0]
        thread.join(timeout=opts.window + 300)
        if "error" in disturbance:
            raise RuntimeError(f"the disturbance failed: {disturbance['error']}")
        sent = {r[3]: r[0] for r in out["requests"] if r[2] == 202}
        arrivals = _wait_for(ctx, path, set(sent), opts.tail_seconds)
    finally:
        ctx.registry.stop(*reversed(procs), grace=3.0)
        flush_redis(ctx.redis_url)
    stopped = time.time()
    swept = sum(int(n) for w in workers for n in SWEEP_SENT.findall(w.log()))
    began, ended = disturbance["began"], disturbance["ended"]
    phases = {
        "calm": (out["start"], began),
        "during": (began, ended),
        "after": (ended, math.inf),
    }
    return {
        "rate": rate,
        "requests": len(out["requests"]),
        "late_sends": out["late"],
        "unsent": out["unsent"],
        **{phase: figures(out["requests"], arrivals, *bounds) for phase, bounds in phases.items()},
        "disturbance": disturbance,
        "stack_stopped_s": round(stopped - disturbance["ended"], 1),
        # Deliveries the sweep sent because no message carried them any more (the workers'
        # log): none is lost while every process runs.
        "sweep_sent": swept,
    }


def figures(requests: list, arrivals: dict[str, float], since: float, until: float) -> dict:
    """Of the requests sent in [since, until): publish request latency, and publish → arrival
    (an event that never arrived counts as infinitely late)."""
    chosen = [r for r in requests if since <= r[0] < until]
    api = sorted(r[1] for r in chosen if r[2] == 202)
    delays = sorted(
        arrivals[r[3]] - r[0] if r[3] in arrivals else math.inf for r in chosen if r[2] == 202
    )
    # From the 202 answer to the arrival: the delivery's own share, without the web's queue.
    after_answer = sorted(
        arrivals[r[3]] - r[0] - r[1] if r[3] in arrivals else math.inf
        for r in chosen
        if r[2] == 202
    )
    return {
        "seconds": round(until - since, 1) if math.isfinite(until) else None,
        "requests": len(chosen),
        "accepted": len(api),
        "delivered": sum(1 for d in delays if math.isfinite(d)),
        "p50_ms": _ms(percentile(delays, 50)),
        "p95_ms": _ms(percentile(delays, 95)),
        "p99_ms": _ms(percentile(delays, 99)),
        "answered_p50_ms": _ms(percentile(after_answer, 50)),
        "answered_p95_ms": _ms(percentile(after_answer, 95)),
        "answered_p99_ms": _ms(percentile(after_answer, 99)),
        "api_p50_ms": _ms(percentile(api, 50)),
        "api_p95_ms": _ms(percentile(api, 95)),
        "api_p99_ms": _ms(percentile(api, 99)),
        "api_max_ms": _ms(api[-1]) if api else None,
    }
