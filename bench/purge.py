"""The retention purge on a table of old events while the API publishes at a steady rate."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from bench.context import Context
from bench.fixtures import clear_events, flush_redis
from bench.paced import _load, _ms
from bench.procs import free_port
from bench.report import percentile
from shared.services.retention import purge as run_purge

OLD_EVENTS = 1_000_000
PUBLISH_RATE = 100.0
# One event with one delivery and one attempt, 40 days old and finished: what the purge removes.
SEED = """
WITH new_events AS (
    INSERT INTO events (id, wallet_id, type, body, created_at)
    SELECT gen_random_uuid(), :wallet, 'ConnectionUpdated', '{"type":"ConnectionUpdated"}',
           now() - interval '40 days' + n * interval '1 millisecond'
    FROM generate_series(1, :count) AS n
    RETURNING id, created_at
), new_deliveries AS (
    INSERT INTO deliveries (id, event_id, wallet_id, target, url, status, round, attempts,
                            next_attempt_at, created_at, updated_at)
    SELECT gen_random_uuid(), id, :wallet, 'wallet', 'http://receiver.test/', 'delivered', 1, 1,
           created_at, created_at, created_at
    FROM new_events
    RETURNING id, created_at
)
INSERT INTO attempts (delivery_id, round, number, started_at, duration_ms, status_code)
SELECT id, 1, 1, created_at, 1.0, 200 FROM new_deliveries
"""


def publish_p95(ctx: Context, port: int, api_key: str, name: str = "purge-load") -> dict:
    """Request percentiles of POST /events at PUBLISH_RATE for the run's duration."""
    command = _load(ctx, port, [api_key], rate=PUBLISH_RATE, threads=16)
    [out] = ctx.run_jobs(name, [command], ctx.options.duration + 90)
    accepted = sorted(r[1] for r in out["requests"] if r[2] == 202)
    return {
        "requests": len(out["requests"]),
        "accepted": len(accepted),
        "p50_ms": _ms(percentile(accepted, 50)),
        "p95_ms": _ms(percentile(accepted, 95)),
        "p99_ms": _ms(percentile(accepted, 99)),
    }


def purge(ctx: Context) -> dict:
    """Publish p95 at 100 events/s without a purge, then while 1M old events are purged."""
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    seeded_at = time.monotonic()
    with ctx.db.engine.begin() as connection:
        wallet = ctx.tenants["drain"].wallet_id
        # The seed is one long statement; the service's statement timeout is for its requests.
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        connection.execute(text(SEED), {"wallet": wallet, "count": OLD_EVENTS})
    with ctx.db.engine.begin() as connection:
        connection.execute(text("ANALYZE events, deliveries, attempts"))
    seed_seconds = time.monotonic() - seeded_at
    port = free_port()
    web = ctx.stack.web(port)
    try:
        quiet = publish_p95(ctx, port, ctx.tenants["drain"].api_key)
        outcome = {}

        def purge_all():
            started = time.monotonic()
            # One run with no time limit: the rate a run keeps while it has work.
            outcome["events"] = run_purge(ctx.db, ctx.settings, run_seconds=float("inf"))
            outcome["seconds"] = time.monotonic() - started

        purger = threading.Thread(target=purge_all)
        purger.start()
        during = publish_p95(ctx, port, ctx.tenants["drain"].api_key)
        purger.join()
    finally:
        ctx.registry.stop(web)
    events = outcome["events"]
    flush_redis(ctx.redis_url)
    return {
        "old_events": OLD_EVENTS,
        "seed_s": round(seed_seconds, 1),
        "purged_events": events,
        "purged_rows": events * 3,  # each with one delivery and one attempt
        "purge_s": round(outcome["seconds"], 1),
        "events_per_s": round(events / outcome["seconds"]),
        "rows_per_s": round(events * 3 / outcome["seconds"]),
        "publish_rate": PUBLISH_RATE,
        "publish_without_purge": quiet,
        "publish_during_purge": during,
        "purge_outlasted_load": outcome["seconds"] > ctx.options.duration,
    }
