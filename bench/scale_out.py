"""scale_out: caps, a rate limit and database connections with four worker processes
(contract §10: they hold across all worker processes; connections per process are bounded).

Four `worker` processes (started here, whatever `--workers` says), `web` and `beat`. At once,
through POST /events/batch:
- (a) 60 events to a webhook whose receiver answers after 1 s: the most requests the receiver
  had open at once (WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK is the cap);
- (b) 200 events to a webhook with `rateLimit: 20`: the most arrivals in any 1-second window,
  and the rate from the first arrival to the last;
- 3,000 events to a webhook on the fast receiver, so that every process is busy.
(c) PostgreSQL connections to the bench's database, sampled every 0.2 s from the moment the
stack starts (pg_stat_activity, client backends) until every event arrived, beside the bound
the README documents: pool per process × (web processes + worker processes) + 1. Each service
process's own connections are counted from /proc (its sockets to the database's port).
"""

from __future__ import annotations

import threading
import time

from bench.activity import Connections
from bench.beside import publish_batches, tenant, wait_arrivals
from bench.context import Context
from bench.fixtures import clear_events, flush_redis
from bench.procs import descendants, free_port

WORKERS = 4
CAPPED, CAPPED_PATH = 60, "/slow1000"  # answered after 1 s
LIMITED, LIMIT = 200, 20
SPREAD = 3_000


def most_in_a_second(times: list[float]) -> int:
    """The most arrivals in any window of 1 s (each window starts at an arrival)."""
    times = sorted(times)
    most = first = 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def scale_out(ctx: Context) -> dict:
    capped = tenant(ctx, "capped", CAPPED_PATH)
    limited = tenant(ctx, "limited", "/limited", rate_limit=LIMIT)
    spread = tenant(ctx, "spread", "/spread")
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    ctx.receiver.reset()
    ctx.db.engine.dispose()  # the bench holds no connection of its own meanwhile
    sampler = Connections(ctx.settings.database_url).start()
    port = free_port()
    procs = []
    began = time.time()
    try:
        procs.append(ctx.stack.web(port))
        sampler.roots["web"] = procs[0].pid
        workers = ctx.stack.workers(WORKERS)
        procs += workers
        procs.append(ctx.stack.beat())
        sampler.roots.update((proc.name, proc.pid) for proc in procs)
        for worker in workers:
            worker.wait_for_log(" ready.", 90)
        web_processes = len(descendants(procs[0].pid)) - 1  # gunicorn's workers
        jobs = [(capped, CAPPED, CAPPED_PATH), (limited, LIMITED, "/limited"),
                (spread, SPREAD, "/spread")]  # fmt: skip
        published: dict[str, dict] = {}
        threads = [
            threading.Thread(
                target=lambda who=who, count=count: published.__setitem__(
                    who.name, publish_batches(port, who.api_key, count, threads=2)
                )
            )
            for who, count, _ in jobs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        arrived = {
            who.name: wait_arrivals(ctx, path, set(published[who.name]["ids"]), 120)
            for who, _, path in jobs
        }
    finally:
        ctx.registry.stop(*reversed(procs), grace=3.0)
        connections = sampler.stop()
        flush_redis(ctx.redis_url)
    limit_times = [at for _, at in ctx.receiver.all_arrivals("/limited")]
    first, last = min(limit_times, default=0.0), max(limit_times, default=0.0)
    capped_stats = ctx.receiver.stats(CAPPED_PATH)
    pool = ctx.settings.database_pool_size + ctx.settings.database_max_overflow
    return {
        "workers": WORKERS,
        "web_processes": web_processes,
        "seconds": round(time.time() - began, 1),
        "capped": {
            "events": CAPPED,
            "arrived": len(arrived["capped"]),
            "requests": capped_stats["count"],
            "peak_concurrent": capped_stats["peak_concurrent"],
            "cap": ctx.settings.max_in_flight_per_webhook,
        },
        "limited": {
            "events": LIMITED,
            "arrived": len(arrived["limited"]),
            "requests": len(limit_times),
            "rate_limit": LIMIT,
            "most_in_a_second": most_in_a_second(limit_times),
            "rate": round((len(limit_times) - 1) / (last - first), 2) if last > first else None,
            "arrivals_s": [round(at - first, 3) for at in sorted(limit_times)],
        },
        "spread": {"events": SPREAD, "arrived": len(arrived["spread"])},
        "connections": {
            **connections,
            "per_process": pool,
            "bound": pool * (web_processes + WORKERS) + 1,
        },
    }
