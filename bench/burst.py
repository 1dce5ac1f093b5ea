"""A burst of single events with the API and the workers on the same cores.

The stack runs as the Procfile starts it (web, the workers, beat), the workers ready. A short
warm-up through another tenant gives the web threads and the workers their database
connections; once its deliveries have arrived, `burst_events` single events (POST /events, one
each) are published from 16 keep-alive connections (2 bench.load processes × 8 threads, closed
loop, each process a fixed share) to a tenant whose webhook is on the fast receiver.

Measured: the publish rate (accepted events / first request → last 202 answer), the delivery
rate at the receiver (first → last arrival, as the baseline's is measured, and first request
→ last arrival), and the CPU of every service process per delivered event, from the first
request of the burst until every delivery is recorded.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from bench.beside import tenant
from bench.context import Context, CpuMeter
from bench.fixtures import flush_redis
from bench.paced import SERVICE_PARTS, _ms
from bench.procs import free_port
from bench.report import percentile

PROCESSES, THREADS = 2, 8  # 16 connections, as ingest: gunicorn's 2 workers × 8 threads
PATH, WARMUP_PATH = "/burst_single", "/burst_warmup"
WARMUP_PER_PROCESS = 100
START_MARGIN = 2.0  # seconds for the load processes to import before they begin together


def _commands(ctx: Context, port: int, key: str, total: int, bound: float) -> list[list[str]]:
    """2 bench.load processes sending `total` requests between them, beginning together."""
    url = f"http://127.0.0.1:{port}/cloud-agent/events"
    start_at = f"{time.time() + START_MARGIN:.3f}"
    shares = [total // PROCESSES + (n < total % PROCESSES) for n in range(PROCESSES)]
    args = [
        "--url", url, "--keys", key, "--duration", str(bound), "--threads", str(THREADS),
        "--start-at", start_at,
    ]  # fmt: skip
    return [ctx.python("bench.load", *args, "--count", str(share)) for share in shares]


def _wait_arrived(ctx: Context, path: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ctx.receiver.stats(path)["count"] < count and time.monotonic() < deadline:
        time.sleep(0.2)


def _settled(ctx: Context, wallet_id, count: int, timeout: float) -> dict[str, int]:
    """Deliveries of the wallet by status, once `count` of them are delivered or failed (or
    at the timeout): the workers have recorded what the receiver got."""
    query = text("SELECT status, count(*) FROM deliveries WHERE wallet_id = :w GROUP BY status")
    deadline = time.monotonic() + timeout
    while True:
        with ctx.db.engine.connect() as connection:
            statuses = dict(connection.execute(query, {"w": wallet_id}).all())
        done = statuses.get("delivered", 0) + statuses.get("failed", 0)
        if done >= count or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)


def burst(ctx: Context) -> dict:
    opts = ctx.options
    target = tenant(ctx, "burst_single", PATH)
    warm = tenant(ctx, "burst_warmup", WARMUP_PATH)
    ctx.clean_slate()
    port = free_port()
    procs = []
    try:
        procs, workers = ctx.stack.service(port, opts.workers)
        # Warm-up: the web threads and the workers connect to the database and prepare their
        # statements, as they have on a service that was already running.
        warmup = WARMUP_PER_PROCESS * PROCESSES
        commands = _commands(ctx, port, warm.api_key, warmup, opts.publish_timeout)
        ctx.run_jobs("burst-warmup", commands, opts.publish_timeout + 60)
        _wait_arrived(ctx, WARMUP_PATH, warmup, opts.tail_seconds)
        _settled(ctx, warm.wallet_id, warmup, opts.tail_seconds)

        meter = CpuMeter(
            {"web": [procs[0].pid], "worker": [w.pid for w in workers], "beat": [procs[-1].pid]},
            ctx,
        )
        commands = _commands(ctx, port, target.api_key, opts.burst_events, opts.publish_timeout)
        meter.start()
        outs = ctx.run_jobs("burst", commands, opts.publish_timeout + 60)
        requests = [r for out in outs for r in out["requests"]]
        accepted = [r for r in requests if r[2] == 202]
        _wait_arrived(ctx, PATH, len(accepted), opts.drain_timeout)
        statuses = _settled(ctx, target.wallet_id, len(accepted), opts.tail_seconds)
        cpu = meter.stop()
    finally:
        ctx.registry.stop(*reversed(procs), grace=3.0)
        flush_redis(ctx.redis_url)
    ids = {r[3] for r in accepted}
    arrivals = ctx.receiver.arrivals(PATH)
    arrived = [arrivals[i] for i in ids if i in arrivals]
    requests_received = len(ctx.receiver.all_arrivals(PATH))
    first_sent = min((r[0] for r in requests), default=None)
    last_answer = max((r[0] + r[1] for r in accepted), default=None)
    first_arrival, last_arrival = (min(arrived), max(arrived)) if arrived else (None, None)
    publish_s = (last_answer - first_sent) if accepted else 0.0
    arrival_s = (last_arrival - first_arrival) if len(arrived) > 1 else 0.0
    end_to_end_s = (last_arrival - first_sent) if arrived else 0.0
    delivered = statuses.get("delivered", 0)
    latencies = sorted(r[1] for r in accepted)
    statuses_seen: dict[str, int] = {}
    for r in requests:
        statuses_seen[str(r[2])] = statuses_seen.get(str(r[2]), 0) + 1
    cost = None
    if delivered:
        cost = {part: round(cpu[part] * 1000 / delivered, 3) for part in SERVICE_PARTS}
        cost["total"] = round(sum(cpu[part] for part in SERVICE_PARTS) * 1000 / delivered, 3)
        cost["delivered"] = delivered
    return {
        "events": opts.burst_events,
        "connections": PROCESSES * THREADS,
        "workers": opts.workers,
        "requests": len(requests),
        "accepted": len(accepted),
        "answers": statuses_seen,
        "publish_s": round(publish_s, 3),
        "publish_rate": round(len(accepted) / publish_s, 1) if publish_s > 0 else 0.0,
        "api_p50_ms": _ms(percentile(latencies, 50)),
        "api_p95_ms": _ms(percentile(latencies, 95)),
        "api_p99_ms": _ms(percentile(latencies, 99)),
        "arrived": len(arrived),
        "receiver_requests": requests_received,
        "duplicates": requests_received - len(arrived),
        "complete": bool(accepted) and len(arrived) == len(accepted),
        "arrival_s": round(arrival_s, 3),
        "delivery_rate": round(len(arrived) / arrival_s, 1) if arrival_s > 0 else 0.0,
        "end_to_end_s": round(end_to_end_s, 3),
        "end_to_end_rate": round(len(arrived) / end_to_end_s, 1) if end_to_end_s > 0 else 0.0,
        "first_arrival_after_s": (
            round(first_arrival - first_sent, 3) if first_arrival and first_sent else None
        ),
        "deliveries_by_status": statuses,
        "cpu_seconds": cpu,
        "service_cpu_ms_per_delivered": cost,
    }
