"""Throughput scenarios: the ceiling, the naive baseline, and the service's drain."""

from __future__ import annotations

import os
import time
from collections import Counter

import redis
from sqlalchemy import text

from bench import noop, profile
from bench.context import Context, CpuMeter
from bench.fixtures import clear_events, flush_redis
from bench.procs import BIN, MemorySampler, descendants, status_kb

POLL = 0.5  # the rates come from timestamps, not from how often the bench looks
WORKER_THREADS = int(os.environ.get("WORKER_CONCURRENCY") or 64)  # as the Procfile's worker
PUBLISHERS = 2  # processes filling the backlog


def ceiling(ctx: Context) -> dict:
    """Plain loops in as many processes as the workers use; then what the receiver can take."""
    opts = ctx.options
    port = str(ctx.receiver.fast_port)
    result = {"processes": opts.workers}
    for mode, processes, seconds in (
        ("plain", opts.workers, opts.ceiling_seconds),
        ("sender", opts.workers, opts.ceiling_seconds),
        ("flood", 2, min(opts.ceiling_seconds, 5.0)),
    ):
        start_at = f"{time.time() + 2.0:.3f}"  # after every process has imported
        args = ("--port", port, "--duration", str(seconds), "--start-at", start_at)
        command = ctx.python("bench.ceiling", mode, *args)
        outs = ctx.run_jobs(f"ceiling-{mode}", [command] * processes, timeout=seconds + 60)
        result[f"{mode}_rps"] = round(sum(o["count"] / o["seconds"] for o in outs), 1)
    return result


def baseline(ctx: Context) -> dict:
    """The naive Celery design draining the same backlog to the same receiver."""
    opts = ctx.options
    flush_redis(ctx.baseline_redis_url)
    ctx.receiver.reset()
    events, publish_rate = publish_backlog(ctx, "naive", "--url", ctx.receiver.url("/naive"))
    env = {**ctx.stack.env, "BASELINE_REDIS_URL": ctx.baseline_redis_url}
    command = [
        str(BIN / "celery"), "-A", "bench.baseline", "worker", "--pool=prefork",
        f"--concurrency={opts.baseline_concurrency}", "--without-gossip", "--without-mingle",
        "--loglevel=INFO",
    ]  # fmt: skip
    worker = ctx.registry.start("baseline-worker", command, env)
    meter = CpuMeter({"worker": [worker.pid]}, ctx)
    received_at_start = 0
    try:
        with MemorySampler([worker.pid]) as memory:
            deadline = time.monotonic() + opts.baseline_timeout
            while time.monotonic() < deadline:
                stats = ctx.receiver.stats("/naive")
                if not meter.begin and stats["count"]:
                    meter.start()
                    received_at_start = stats["count"]
                if stats["count"] >= events:
                    break
                if not worker.alive():
                    raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
                time.sleep(POLL)
            cpu = meter.stop() if meter.begin else {}
            stats = ctx.receiver.stats("/naive")
    finally:
        ctx.registry.stop(worker, grace=5.0)
        flush_redis(ctx.baseline_redis_url)
    window = (stats["last"] - stats["first"]) if stats["count"] > 1 else 0.0
    return {
        "events": events,
        "received": stats["count"],
        "complete": stats["count"] >= events,
        "seconds": round(window, 3),
        "rate": round(stats["count"] / window, 1) if window else 0.0,
        "seconds_from_spawn": round(stats["last"] - worker.started, 3) if stats["last"] else None,
        "publish_rate": round(publish_rate, 1),
        "concurrency": opts.baseline_concurrency,
        "peak_tree_rss_mb": round(memory.peak_tree_kb / 1024, 1),
        "cpu_seconds": cpu,
        "worker_cpu_ms_per_delivery": _per(cpu, "worker", stats["count"] - received_at_start),
    }


def _noop_workers(ctx: Context) -> list:
    env = {**ctx.stack.env, "BASELINE_REDIS_URL": ctx.baseline_redis_url}
    command = [
        str(BIN / "celery"), "-A", "bench.noop", "worker", "--pool=threads",
        f"--concurrency={WORKER_THREADS}", "--without-gossip", "--without-mingle",
        "--loglevel=WARNING",
    ]  # fmt: skip
    return [
        ctx.registry.start(f"noop-worker-{n}", command, env) for n in range(ctx.options.workers)
    ]


def celery_floor(ctx: Context) -> dict:
    """No-op tasks drained by as many threads-pool workers as the drain uses: Celery's own cost."""
    opts = ctx.options
    flush_redis(ctx.baseline_redis_url)
    events, _ = publish_backlog(ctx, "noop")
    queue = redis.Redis.from_url(ctx.baseline_redis_url)
    workers = _noop_workers(ctx)
    meter = CpuMeter({"worker": [w.pid for w in workers]}, ctx)
    first = last = None
    try:
        deadline = time.monotonic() + opts.baseline_timeout
        while time.monotonic() < deadline:
            if first is None and queue.llen(noop.QUEUE) < events:
                first = time.time()
                meter.start()
            if int(queue.get(noop.DONE_KEY) or 0) >= events:
                last = time.time()
                break
            for worker in workers:
                if not worker.alive():
                    raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
            time.sleep(0.01)  # the rate comes from this poll: keep it fine
        cpu = meter.stop() if meter.begin else {}
        done = int(queue.get(noop.DONE_KEY) or 0)
    finally:
        ctx.registry.stop(*workers, grace=5.0)
        flush_redis(ctx.baseline_redis_url)
    window = ((last or time.time()) - first) if first else 0.0
    return {
        "events": events,
        "done": done,
        "complete": done >= events,
        "workers": opts.workers,
        "concurrency": WORKER_THREADS,
        "seconds": round(window, 3),
        "rate": round(done / window, 1) if window else 0.0,
        "cpu_seconds": cpu,
        "worker_cpu_ms_per_task": _per(cpu, "worker", done),
    }


def celery_floor_paced(ctx: Context) -> dict:
    """No-op tasks sent at the latency scenario's rate to idle workers: Celery's own cost per
    message when messages come one by one, as they do below saturation."""
    opts = ctx.options
    flush_redis(ctx.baseline_redis_url)
    queue = redis.Redis.from_url(ctx.baseline_redis_url)
    workers = _noop_workers(ctx)
    try:
        # Ready once a first task has run (their log level hides the "ready" line).
        noop.nothing.apply_async(args=(0,))
        deadline = time.monotonic() + 90
        while not int(queue.get(noop.DONE_KEY) or 0):
            if time.monotonic() > deadline:
                raise RuntimeError("the no-op workers did not start")
            time.sleep(0.1)
        queue.delete(noop.DONE_KEY)
        count = int(opts.latency_rate * opts.duration)
        until = f"{time.time() + opts.duration + 30:.3f}"
        command = ctx.python(
            "bench.publish", "noop", "--count", str(count), "--until", until,
            "--rate", str(opts.latency_rate),
        )  # fmt: skip
        meter = CpuMeter({"worker": [w.pid for w in workers]}, ctx)
        meter.start()
        sent = ctx.run_jobs("floor-paced", [command], opts.duration + 60)[0]["count"]
        deadline = time.monotonic() + 10
        while int(queue.get(noop.DONE_KEY) or 0) < sent and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = meter.stop()
        done = int(queue.get(noop.DONE_KEY) or 0)
    finally:
        ctx.registry.stop(*workers, grace=5.0)
        flush_redis(ctx.baseline_redis_url)
    return {
        "rate": opts.latency_rate,
        "sent": sent,
        "done": done,
        "complete": done >= sent,
        "cpu_seconds": cpu,
        "worker_cpu_ms_per_task": _per(cpu, "worker", done),
    }


def _per(cpu: dict, group: str, count: int) -> float | None:
    """Milliseconds of CPU that `group` spent per item over the metered window."""
    return round(cpu[group] * 1000 / count, 3) if cpu and count > 0 else None


def publish_backlog(ctx: Context, kind: str, *args: str) -> tuple[int, float]:
    """Fill the backlog from a few processes; (events published, events per second)."""
    opts = ctx.options
    shares = [opts.events // PUBLISHERS + (n < opts.events % PUBLISHERS) for n in range(PUBLISHERS)]
    until = f"{time.time() + opts.publish_timeout:.3f}"
    commands = [
        ctx.python("bench.publish", kind, *args, "--count", str(share), "--until", until)
        for share in shares
    ]
    outs = ctx.run_jobs(f"publish-{kind}", commands, opts.publish_timeout + 60)
    published = sum(out["count"] for out in outs)
    return published, published / max(out["seconds"] for out in outs)


def drain(ctx: Context) -> dict:
    """N events published with no worker running; then the workers start and drain them."""
    opts = ctx.options
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    ctx.receiver.reset()
    wallet_id = str(ctx.tenants["drain"].wallet_id)
    events, publish_rate = publish_backlog(ctx, "service", "--wallet", wallet_id)
    workers = ctx.stack.workers(opts.workers)
    meter = CpuMeter({"worker": [w.pid for w in workers]}, ctx)
    counts: dict[str, int] = {}
    delivered_at_start = 0
    profilers: list = []
    try:
        with MemorySampler([w.pid for w in workers]) as memory:
            deadline = time.monotonic() + opts.drain_timeout
            while time.monotonic() < deadline:
                counts = _status_counts(ctx)
                if not meter.begin and counts.get("delivered", 0):
                    meter.start()
                    delivered_at_start = counts["delivered"]
                    if opts.profile:
                        profilers = [profile.start(ctx.registry, w.name, w.pid) for w in workers]
                if counts.get("delivered", 0) + counts.get("failed", 0) >= events:
                    break
                for worker in workers:
                    if not worker.alive():
                        raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
                time.sleep(POLL)
            cpu = meter.stop() if meter.begin else {}
            delivered_in_window = counts.get("delivered", 0) - delivered_at_start
            hwm = _peak_rss_kb(workers)
            profiles = [profile.stop(ctx.registry, started) for started in profilers]
    finally:
        ctx.registry.stop(*workers, grace=5.0)
    facts = _drain_facts(ctx)
    window = facts["last_delivered"] - facts["first_attempt"] if facts["first_attempt"] else 0
    delivered = facts["delivered"]
    arrivals = ctx.receiver.stats("/hook")["count"]
    return {
        "events": events,
        "workers": opts.workers,
        "concurrency": WORKER_THREADS,
        "delivered": delivered,
        "failed": counts.get("failed", 0),
        "complete": delivered >= events,
        "attempts_recorded": facts["attempts"],
        "receiver_requests": arrivals,
        "seconds": round(window, 3),
        "rate": round(delivered / window, 1) if window > 0 else 0.0,
        "publish_rate": round(publish_rate, 1),
        "peak_process_rss_mb": round(max(hwm, memory.peak_process_kb) / 1024, 1),
        "peak_tree_rss_mb": round(memory.peak_tree_kb / 1024, 1),
        "cpu_seconds": cpu,
        "seconds_from_spawn": (
            round(facts["last_delivered"] - workers[0].started, 3) if window > 0 else None
        ),
        "worker_cpu_ms_per_delivery": _per(cpu, "worker", delivered_in_window),
        "task_outcomes": task_outcomes(workers),
        "profiles": profiles,
    }


def _status_counts(ctx: Context) -> dict[str, int]:
    with ctx.db.engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status"))
        return {status: count for status, count in rows}


def _drain_facts(ctx: Context) -> dict:
    query = text(
        "SELECT (SELECT min(started_at) FROM attempts),"
        " (SELECT max(updated_at) FROM deliveries WHERE status = 'delivered'),"
        " (SELECT count(*) FROM attempts),"
        " (SELECT count(*) FROM deliveries WHERE status = 'delivered')"
    )
    with ctx.db.engine.connect() as connection:
        first, last, attempts, delivered = connection.execute(query).one()
    return {
        "first_attempt": first.timestamp() if first else None,
        "last_delivered": last.timestamp() if last else None,
        "attempts": attempts,
        "delivered": delivered,
    }


def _peak_rss_kb(workers) -> int:
    return max((status_kb(pid, "VmHWM") for w in workers for pid in descendants(w.pid)), default=0)


def task_outcomes(workers) -> dict[str, int]:
    """What the delivery tasks returned, from the workers' INFO log lines (`succeeded in …`)."""
    outcomes: Counter = Counter()
    for worker in workers:
        with open(worker.log_path, errors="replace") as log:
            for line in log:
                if "succeeded in" in line and "webhooks.deliver[" in line:
                    outcomes[line.rstrip().rsplit(": ", 1)[-1].strip("'")] += 1
    return dict(outcomes)
