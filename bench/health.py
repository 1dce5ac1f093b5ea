"""Receiver health under load: hanging webhooks beside healthy ones, and a receiver down for a
long while that comes back.

- isolation_alone: 100 events/s alternating between two healthy webhooks on one host; the
  yardstick for the two below (the same load with no hanging webhook, in the same run).
- isolation_same_host: the same, one webhook never answering, on the same host and port as the
  healthy one (another path).
- isolation_many_hosts: the same, the hanging half spread over 8 hosts that never answer.
- outage: 100 events/s alternating between a receiver that refuses connections for
  `--outage-seconds` and a healthy one; then the first comes back. Worker memory and Redis
  memory are sampled throughout; every delivery must arrive once, each with at most 3 attempts.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import redis
from sqlalchemy import text

from bench.context import Context
from bench.fixtures import clear_events, flush_redis, make_tenant
from bench.paced import PACED_THREADS, _load, _ms, _paced
from bench.procs import free_port, status_kb
from bench.receiver import ReceiverClient
from bench.report import percentile

HANGING_HOSTS = 8


def make_tenants(ctx: Context) -> None:
    receiver, db, settings = ctx.receiver, ctx.db, ctx.settings
    ctx.tenants["neighbour"] = make_tenant(db, settings, "neighbour", receiver.url("/neighbour"))
    ctx.tenants["same_host"] = make_tenant(db, settings, "same_host", receiver.url("/stall"))
    for host in range(min(HANGING_HOSTS, len(receiver.stalled_ports))):
        url = receiver.stalled_url("/hang", host)
        ctx.tenants[f"hanging_{host}"] = make_tenant(db, settings, f"hanging_{host}", url)
    ctx.outage_port = free_port()  # nothing listens there until the outage ends
    url = f"http://127.0.0.1:{ctx.outage_port}/outage"
    ctx.tenants["outage"] = make_tenant(db, settings, "outage", url)
    ctx.tenants["beside"] = make_tenant(db, settings, "beside", receiver.url("/beside"))


def isolation_alone(ctx: Context) -> dict:
    return _paced(ctx, "isolation_alone", ["neighbour", "healthy"], ctx.options.isolation_rate,
                  "/healthy")  # fmt: skip


def isolation_same_host(ctx: Context) -> dict:
    return _paced(ctx, "isolation_same_host", ["same_host", "healthy"],
                  ctx.options.isolation_rate, "/healthy")  # fmt: skip


def isolation_many_hosts(ctx: Context) -> dict:
    tenants = []
    for host in range(HANGING_HOSTS):
        tenants += [f"hanging_{host}", "healthy"]
    return _paced(ctx, "isolation_many_hosts", tenants, ctx.options.isolation_rate, "/healthy")


class _Sampler:
    """Peak RSS of the worker processes and Redis's used memory, once a second."""

    def __init__(self, pids: list[int], redis_url: str):
        self.pids = pids
        self.redis = redis.Redis.from_url(redis_url)
        self.start = self.sample()
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> dict:
        return {
            "worker_rss_kb": max(status_kb(pid, "VmRSS") for pid in self.pids),
            "redis_used_memory_kb": self.redis.info("memory")["used_memory"] // 1024,
        }

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for key, value in self.sample().items():
                self.peak[key] = max(self.peak[key], value)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"start": self.start, "peak": self.peak}


def outage(ctx: Context) -> dict:
    opts = ctx.options
    seconds = opts.outage_seconds
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    ctx.receiver.reset()
    port = free_port()
    procs, back = [], None
    try:
        procs, workers = ctx.stack.service(port, opts.workers)
        sampler = _Sampler([worker.pid for worker in workers], ctx.redis_url)
        keys = [ctx.tenants["outage"].api_key, ctx.tenants["beside"].api_key]
        command = _load(ctx, port, keys, opts.isolation_rate, PACED_THREADS, duration=seconds)
        out = ctx.run_jobs("outage", [command], seconds + 120)[0]
        accepted = [r for r in out["requests"] if r[2] == 202]
        missed = {r[3] for r in accepted if r[4] == 0}
        beside = {r[3]: r[0] for r in accepted if r[4] == 1}
        beside_arrivals = ctx.receiver.arrivals("/beside")
        waiting = _count(ctx, "SELECT count(*) FROM deliveries WHERE status = 'waiting'")
        # The receiver comes back on the port it refused.
        command = [sys.executable, "-m", "bench.receiver", "--fast-port", str(ctx.outage_port),
                   "--stalled", "0"]  # fmt: skip
        back = ctx.registry.start("receiver-back", command, None, stdout=subprocess.PIPE)
        back.popen.stdout.readline()
        came_back = time.time()
        client = ReceiverClient(ctx.outage_port, [])
        deadline = time.monotonic() + max(300.0, seconds)
        while time.monotonic() < deadline:
            if missed <= client.arrivals("/outage").keys():
                break
            time.sleep(1.0)
        raw = client.all_arrivals("/outage")
        memory = sampler.stop()
        attempts = _count(
            ctx,
            "SELECT coalesce(max(d.attempts), 0) FROM deliveries d JOIN webhooks w "
            "ON w.id = d.webhook_id WHERE w.url LIKE '%/outage'",
        )
    finally:
        ctx.registry.stop(*reversed(procs), grace=3.0)
        if back is not None:
            ctx.registry.stop(back, grace=1.0)
        flush_redis(ctx.redis_url)
    arrived = {webhook_id: at for webhook_id, at in reversed(raw)}
    delays = sorted(
        beside_arrivals[i] - t if i in beside_arrivals else math.inf for i, t in beside.items()
    )
    last = max((arrived[i] for i in missed if i in arrived), default=None)
    return {
        "outage_s": seconds,
        "rate": opts.isolation_rate,
        "missed_while_down": len(missed),
        "waiting_when_back": waiting,
        "arrived_after": len(missed & arrived.keys()),
        "duplicates": len(raw) - len(arrived),
        "max_attempts": attempts,
        "release_s": round(last - came_back, 1) if last else None,
        "beside_p50_ms": _ms(percentile(delays, 50)),
        "beside_p95_ms": _ms(percentile(delays, 95)),
        "beside_p99_ms": _ms(percentile(delays, 99)),
        "memory_kb": memory,
    }


def _count(ctx: Context, query: str) -> int:
    with ctx.db.engine.connect() as connection:
        return connection.execute(text(query)).scalar()
