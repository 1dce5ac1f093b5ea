"""Scenarios driven through the API: ingest, latency, and isolation from a stalled receiver."""

from __future__ import annotations

import math
import time

from sqlalchemy import text

from bench import profile
from bench.context import Context, CpuMeter
from bench.fixtures import clear_events, flush_redis
from bench.procs import free_port
from bench.report import percentile
from bench.scenarios import task_outcomes

INGEST_PROCESSES, INGEST_THREADS = 2, 8  # 16 connections: gunicorn's 2 workers × 8 threads
PACED_THREADS = 32


def _load(
    ctx: Context,
    port: int,
    keys: list[str],
    rate: float = 0.0,
    threads: int = 8,
    duration: float | None = None,
    start_at: float | None = None,
):
    """bench.load's command: the measured load begins at `start_at` (by default 2 s from now,
    for the process to start, plus the warm-up)."""
    url = f"http://127.0.0.1:{port}/cloud-agent/events"
    start_at = start_at or time.time() + 2.0 + ctx.options.warmup
    return ctx.python(
        "bench.load", "--url", url, "--keys", ",".join(keys),
        "--duration", str(duration or ctx.options.duration), "--threads", str(threads),
        "--rate", str(rate), "--start-at", f"{start_at:.3f}",
        "--warmup", str(ctx.options.warmup),
    )  # fmt: skip


def _ms(seconds: float) -> float:
    """Milliseconds; inf (never arrived) and nan (nothing measured) pass through."""
    return round(seconds * 1000, 1) if math.isfinite(seconds) else seconds


def ingest(ctx: Context) -> dict:
    """Closed-loop POST /events through gunicorn (no worker running: the API alone)."""
    opts = ctx.options
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    port = free_port()
    web = ctx.stack.web(port)
    meter = CpuMeter({"web": [web.pid]}, ctx)
    profiler = profile.start(ctx.registry, "web", web.pid) if opts.profile else None
    try:
        command = _load(ctx, port, [ctx.tenants["drain"].api_key], threads=INGEST_THREADS)
        meter.start()
        outs = ctx.run_jobs("ingest", [command] * INGEST_PROCESSES, opts.duration + 90)
        cpu = meter.stop()
        profiled = profile.stop(ctx.registry, profiler)
    finally:
        ctx.registry.stop(web)
    requests = [r for out in outs for r in out["requests"]]
    accepted = sorted(r[1] for r in requests if r[2] == 202)
    warmup_accepted = sum(out["warmup"]["accepted"] for out in outs)
    with ctx.db.engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM events")).scalar()
    flush_redis(ctx.redis_url)
    return {
        "connections": INGEST_PROCESSES * INGEST_THREADS,
        "seconds": opts.duration,
        "requests": len(requests),
        "accepted": len(accepted),
        "errors": len(requests) - len(accepted),
        "events_stored": stored,
        "warmup_accepted": warmup_accepted,
        "rate": round(len(accepted) / opts.duration, 1),
        "p50_ms": _ms(percentile(accepted, 50)),
        "p95_ms": _ms(percentile(accepted, 95)),
        "p99_ms": _ms(percentile(accepted, 99)),
        "cpu_seconds": cpu,
        # The meter ran through the warm-up too, so its events count here.
        "web_cpu_ms_per_event": (
            round(cpu["web"] * 1000 / (len(accepted) + warmup_accepted), 3) if accepted else None
        ),
        "profile": profiled,
    }


def latency(ctx: Context) -> dict:
    """Events at a steady rate with the whole service running: publish call → receiver."""
    return _paced(ctx, "latency", ["latency"], ctx.options.latency_rate, "/latency")


def latency_high(ctx: Context) -> dict:
    """The same at a higher rate (400 events/s by default), on the same tenant."""
    return _paced(ctx, "latency_high", ["latency"], ctx.options.latency_high_rate, "/latency")


def isolation(ctx: Context) -> dict:
    """Half the events to a receiver that never answers: latency of the healthy half."""
    return _paced(ctx, "isolation", ["stalled", "healthy"], ctx.options.isolation_rate, "/healthy")


def _paced(ctx: Context, name: str, tenants: list[str], rate: float, path: str) -> dict:
    """Events at `rate`, the tenants taking turns; figures for the last tenant's deliveries."""
    opts = ctx.options
    watched = {i for i, tenant in enumerate(tenants) if tenant == tenants[-1]}
    ctx.clean_slate()
    port = free_port()
    procs = []
    try:
        procs, workers = ctx.stack.service(port, opts.workers)
        keys = [ctx.tenants[tenant].api_key for tenant in tenants]
        command = _load(ctx, port, keys, rate=rate, threads=PACED_THREADS)
        # Every process of the service, from the first request (warm-up included) until the
        # last watched event arrived: its CPU over the events it delivered meanwhile.
        meter = CpuMeter(
            {"web": [procs[0].pid], "worker": [w.pid for w in workers], "beat": [procs[-1].pid]},
            ctx,
        )
        profilers = []
        if opts.profile:
            profilers = [profile.start(ctx.registry, f"{name}-{p.name}", p.pid) for p in procs]
        meter.start()
        out = ctx.run_jobs(name, [command], opts.duration + 90)[0]
        sent = {r[3]: r[0] for r in out["requests"] if r[2] == 202 and r[4] in watched}
        arrivals = _wait_for(ctx, path, set(sent), opts.tail_seconds)
        cpu = meter.stop()
        profiles = {
            p.name: profile.stop(ctx.registry, s) for p, s in zip(procs, profilers, strict=False)
        }
        statuses = _status_counts(ctx, tenants)
        outcomes = task_outcomes(workers)
    finally:
        ctx.registry.stop(*reversed(procs), grace=3.0)
        flush_redis(ctx.redis_url)
    waited = out["finished"] - out["start"] + opts.tail_seconds
    delays = sorted(arrivals[i] - t if i in arrivals else math.inf for i, t in sent.items())
    api = sorted(r[1] for r in out["requests"] if r[2] == 202)
    return {
        "rate": rate,
        "seconds": opts.duration,
        "requests": len(out["requests"]),
        "accepted": len(api),
        "achieved_rate": round(len(api) / opts.duration, 1),
        "late_sends": out["late"],
        "unsent": out["unsent"],
        "watched": len(sent),
        "delivered": sum(1 for d in delays if math.isfinite(d)),
        "waited_s": round(waited, 1),
        "p50_ms": _ms(percentile(delays, 50)),
        "p95_ms": _ms(percentile(delays, 95)),
        "p99_ms": _ms(percentile(delays, 99)),
        "max_ms": _ms(delays[-1]) if delays else None,
        "api_p95_ms": _ms(percentile(api, 95)),
        "cpu_seconds": cpu,
        "service_cpu_ms_per_delivered": _service_cost(cpu, statuses),
        "profiles": profiles,
        "deliveries_by_status": statuses,
        "task_outcomes": outcomes,
    }


SERVICE_PARTS = ("web", "worker", "beat", "postgres", "redis")


def _service_cost(cpu: dict, statuses: dict) -> dict | None:
    """Milliseconds of CPU per delivered event: each part of the service, and their total."""
    delivered = sum(counts.get("delivered", 0) for counts in statuses.values())
    if not delivered:
        return None
    cost = {part: round(cpu[part] * 1000 / delivered, 3) for part in SERVICE_PARTS}
    cost["total"] = round(sum(cpu[part] for part in SERVICE_PARTS) * 1000 / delivered, 3)
    cost["delivered"] = delivered
    return cost


def _wait_for(ctx: Context, path: str, ids: set[str], tail: float) -> dict[str, float]:
    deadline = time.monotonic() + tail
    while True:
        arrivals = ctx.receiver.arrivals(path)
        if ids <= arrivals.keys() or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.5)


def _status_counts(ctx: Context, tenants: list[str]) -> dict[str, dict[str, int]]:
    """Deliveries by tenant and status when the scenario ends."""
    names = {str(ctx.tenants[tenant].wallet_id): tenant for tenant in tenants}
    counts: dict[str, dict[str, int]] = {tenant: {} for tenant in names.values()}
    query = text("SELECT wallet_id, status, count(*) FROM deliveries GROUP BY wallet_id, status")
    with ctx.db.engine.connect() as connection:
        for wallet_id, status, count in connection.execute(query):
            if str(wallet_id) in names:
                counts[names[str(wallet_id)]][status] = count
    return counts
