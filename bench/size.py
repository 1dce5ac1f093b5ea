"""The same figures on small tables and on a year-like history: do the costs stay flat?

First on small tables (the reader's own history of 2,000 deliveries, so that every page it
reads is full, and what the measurements publish), then after loading a history around it
with PostgreSQL's bulk paths (INSERT ... SELECT over generate_series, secondary indexes built
after the rows, foreign key triggers off during the load): `--size-rows` deliveries
(10 million; quick: 1 million) and about as many attempts over 31 days, in 1,000 wallets of
10 webhooks each, 1 % failed, and 100 failing webhooks with 100 waiting deliveries each.
Measured each time:

- publish p95 at a steady 100 events/s through the API (the API alone, as `purge` does);
- drain: a backlog of `--events` through the workers, first to last arrival;
- one sweep, as beat's task runs it in a worker process (median of three);
- the delivery log: `GET /events/deliveries` for a tenant and for the operator, and the
  console's pages, each asked 20 times in a row;
- on the history only: the purge's rate on the events older than RETENTION_DAYS (30).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
import uuid

import requests
from sqlalchemy import text

from bench.context import Context
from bench.fixtures import Tenant, flush_redis, make_tenant
from bench.paced import _ms
from bench.procs import free_port
from bench.purge import publish_p95
from bench.report import percentile
from bench.scenarios import publish_backlog
from shared.services.retention import purge as run_purge
from shared.services.webhooks import WebhookRequest, create_webhook

WALLETS, WEBHOOKS_PER_WALLET = 1_000, 10
FAILING_WEBHOOKS, WAITING_PER_FAILING = 100, 100
FAILED_SHARE = 0.01
# The reader's history: 2,000 deliveries over its 10 webhooks, about 100 of them failed.
READER_EVENTS, READER_FAILED_SHARE = 200, 0.05
HISTORY_DAYS = 31  # one day more than RETENTION_DAYS: the oldest day is the purge's work
ASKED = 20  # requests per page measured
SWEEPS = 3
PURGE_SECONDS = 20.0
ADMIN = {"x-admin-api-key": "bench-admin-token-0123456789"}
TABLES = ("events", "deliveries", "attempts")
BODY = json.dumps(
    {"type": "ConnectionUpdated", "id": "0", "ts": "2026-01-01T00:00:00Z", "data": {"x": "y" * 200}}
)


def size(ctx: Context) -> dict:
    rows = ctx.options.size_rows
    tenant, reader = _size_tenants(ctx)
    result = {"history_rows": rows, "reader_deliveries": _reader_history(ctx, reader)}
    result["empty"] = _measure(ctx, tenant, reader)
    result["load"] = load_history(ctx, [tenant.wallet_id, reader.wallet_id], rows)
    result["loaded"] = _measure(ctx, tenant, reader, purge=True)
    ratios = {}
    for figure in ("publish_p95_ms", "drain_rate", "sweep_ms"):
        before, after = result["empty"].get(figure), result["loaded"].get(figure)
        if before and after:
            # Rates: how much slower (empty / loaded); times: loaded / empty.
            ratios[figure] = round(before / after if figure.endswith("rate") else after / before, 2)
    for page, timing in result["loaded"]["pages"].items():
        before = result["empty"]["pages"][page]["p95_ms"]
        ratios[f"page {page}"] = round(timing["p95_ms"] / before, 2) if before else None
    result["ratios"] = ratios
    return result


def _size_tenants(ctx: Context) -> tuple[Tenant, Tenant]:
    """The publisher (one webhook, its events drained) and the reader (a wallet of 10 webhooks,
    whose delivery log is read); the history is loaded for both with the rest."""
    if "size" not in ctx.tenants:
        ctx.tenants["size"] = make_tenant(ctx.db, ctx.settings, "size", ctx.receiver.url("/size"))
        reader = make_tenant(ctx.db, ctx.settings, "size-reader", ctx.receiver.url("/history0"))
        with ctx.db.transaction() as session:
            for number in range(1, WEBHOOKS_PER_WALLET):
                request = WebhookRequest(ctx.receiver.url(f"/history{number}"))
                create_webhook(session, ctx.settings, reader.wallet_id, request, limit=100)
        ctx.tenants["size-reader"] = reader
    return ctx.tenants["size"], ctx.tenants["size-reader"]


def _measure(ctx: Context, tenant: Tenant, reader: Tenant, purge: bool = False) -> dict:
    _clear_recent(ctx, tenant)
    # The drain first: the publish load below leaves its deliveries pending, undelivered.
    figures = _drain(ctx, tenant)
    port = free_port()
    web = ctx.stack.web(port)
    try:
        base = f"http://127.0.0.1:{port}/cloud-agent"
        publish = publish_p95(ctx, port, tenant.api_key, "size-load")
        pages = _pages(base, reader)
    finally:
        ctx.registry.stop(web)
    figures.update(publish=publish, publish_p95_ms=publish["p95_ms"], pages=pages)
    figures.update(_sweeps(ctx))
    if purge:
        figures["purge"] = _purge(ctx)
    return figures


def _clear_recent(ctx: Context, tenant: Tenant) -> None:
    """What the previous measurement published is removed; the loaded history stays."""
    flush_redis(ctx.redis_url)
    ctx.receiver.reset()
    with ctx.db.engine.begin() as connection:
        connection.execute(
            text(
                "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries"
                " WHERE created_at > now() - interval '1 hour' AND webhook_id = :hook)"
            ),
            {"hook": tenant.webhook_id},
        )
        connection.execute(
            text(
                "DELETE FROM events WHERE created_at > now() - interval '1 hour'"
                " AND id IN (SELECT event_id FROM deliveries WHERE webhook_id = :hook)"
            ),
            {"hook": tenant.webhook_id},
        )


def _pages(base: str, tenant: Tenant) -> dict:
    """Each page ASKED times in a row; its answer times (ms)."""
    tenant_headers = {"apikey": tenant.api_key}
    log = f"{base}/events/deliveries"
    asked = {
        "api tenant log": (requests.Session(), log + "?limit=50", tenant_headers),
        "api tenant failed": (requests.Session(), log + "?limit=50&status=failed", tenant_headers),
        "api tenant offset 1000": (
            requests.Session(), log + "?limit=50&offset=1000", tenant_headers
        ),
        "api operator log": (requests.Session(), log + "?limit=50", ADMIN),
        "api operator failed": (requests.Session(), log + "?limit=50&status=failed", ADMIN),
    }  # fmt: skip
    tenant_console = _console(base, "tenant", tenant.api_key)
    operator_console = _console(base, "admin", ADMIN["x-admin-api-key"])
    asked.update(
        {
            "console tenant deliveries": (tenant_console, f"{base}/console/deliveries", {}),
            "console tenant failed": (
                tenant_console, f"{base}/console/deliveries?status=failed", {}
            ),
            "console tenant webhooks": (tenant_console, f"{base}/console/webhooks", {}),
            "console operator deliveries": (operator_console, f"{base}/console/deliveries", {}),
            "console operator overview": (operator_console, f"{base}/console/overview", {}),
        }
    )  # fmt: skip
    timings = {}
    for name, (session, url, headers) in asked.items():
        seconds = []
        for _ in range(ASKED):
            started = time.perf_counter()
            answer = session.get(url, headers=headers, timeout=60)
            seconds.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:300]}")
        seconds.sort()
        timings[name] = {
            "p50_ms": _ms(percentile(seconds, 50)),
            "p95_ms": _ms(percentile(seconds, 95)),
        }
    return timings


def _console(base: str, kind: str, secret: str) -> requests.Session:
    """A browser's session, signed in as a tenant or as the operator."""
    session = requests.Session()
    form = session.get(f"{base}/console/sign-in", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]*)"', form)
    data = {"kind": kind, "secret": secret, "csrf": csrf.group(1) if csrf else ""}
    answer = session.post(f"{base}/console/sign-in", data=data, timeout=30)
    if answer.status_code != 200 or "sign-in" in answer.url:
        raise RuntimeError(f"console sign-in as {kind} failed: {answer.status_code}")
    return session


def _drain(ctx: Context, tenant: Tenant) -> dict:
    """A backlog published with no worker running, then drained: first to last arrival."""
    events, _ = publish_backlog(ctx, "service", "--wallet", str(tenant.wallet_id))
    workers = ctx.stack.workers(ctx.options.workers)
    try:
        deadline = time.monotonic() + ctx.options.drain_timeout
        stats = {"count": 0}
        while time.monotonic() < deadline and stats["count"] < events:
            time.sleep(0.5)
            stats = ctx.receiver.stats("/size") or stats
    finally:
        ctx.registry.stop(*workers, grace=5.0)
    window = stats["last"] - stats["first"] if stats["count"] > 1 else 0.0
    return {
        "drain_events": events,
        "drain_arrived": stats["count"],
        "drain_seconds": round(window, 3),
        "drain_rate": round(stats["count"] / window, 1) if window else 0.0,
    }


def _sweeps(ctx: Context) -> dict:
    """Beat's sweep task, run SWEEPS times in a process with the worker's settings."""
    [out] = ctx.run_jobs("size-sweep", [ctx.python("bench.size", "sweep")], 600)
    return {"sweep_ms": round(statistics.median(out["ms"]), 1), "sweeps_ms": out["ms"]}


def _purge(ctx: Context) -> dict:
    """The purge (RETENTION_DAYS 30) on the history's oldest day, for PURGE_SECONDS."""
    started = time.monotonic()
    events = run_purge(ctx.db, ctx.settings, run_seconds=PURGE_SECONDS)
    seconds = time.monotonic() - started
    return {
        "events": events,
        "seconds": round(seconds, 1),
        "events_per_s": round(events / seconds, 1),
        "deliveries_per_s": round(events * WEBHOOKS_PER_WALLET / seconds, 1),
    }


def _reader_history(ctx: Context, reader: Tenant) -> int:
    """The reader's own history, the same on the small tables and on the loaded ones: every
    page it reads is full (50 rows, failed ones too, and more than 1,000 for the offset), so
    that the two figures differ by the tables' size alone, not by the rows a page shows."""
    with ctx.db.engine.begin() as connection:
        wallets = {"wallets": [reader.wallet_id]}
        connection.execute(text(_EVENTS), {**wallets, "count": READER_EVENTS, "body": BODY})
        connection.execute(text(_DELIVERIES), {**wallets, "failed": READER_FAILED_SHARE})
        connection.execute(text(_ATTEMPTS), wallets)
        return connection.execute(
            text("SELECT count(*) FROM deliveries WHERE wallet_id = :wallet"),
            {"wallet": reader.wallet_id},
        ).scalar()


def load_history(ctx: Context, measured: list[uuid.UUID], rows: int) -> dict:
    """The wallets and webhooks through the services, the history in bulk; seconds each step.
    The reader (`measured[1]`) has its history already."""
    steps = {}
    started = time.monotonic()
    wallets = _history_wallets(ctx, measured)
    loaded = {"wallets": [wallet for wallet in wallets if wallet != measured[1]]}
    steps["wallets_and_webhooks_s"] = round(time.monotonic() - started, 1)
    with ctx.db.engine.begin() as connection:
        connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        # Each step is one long statement; the service's statement timeout is for its requests.
        connection.execute(text("SET LOCAL statement_timeout = 0"))
        # The rows are made consistent by construction; their foreign keys are not checked
        # one by one (superuser: the bench's own database).
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        indexes = connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:tables)"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            ),
            {"tables": list(TABLES)},
        ).all()
        for name, _ in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
        timed = time.monotonic()
        events = rows // WEBHOOKS_PER_WALLET
        connection.execute(text(_EVENTS), {**loaded, "count": events, "body": BODY})
        # The planner must know the tables the next statement joins as they are now. With the
        # statistics an earlier scenario left (a few webhooks, no events), it joined each event
        # to every webhook in a nested loop: more than 20 minutes at 10 million, not 100 s.
        connection.execute(text("ANALYZE events, webhooks"))
        steps["events_s"] = round(time.monotonic() - timed, 1)
        timed = time.monotonic()
        connection.execute(text(_DELIVERIES), {**loaded, "failed": FAILED_SHARE})
        steps["deliveries_s"] = round(time.monotonic() - timed, 1)
        timed = time.monotonic()
        connection.execute(text(_ATTEMPTS), loaded)
        steps["attempts_s"] = round(time.monotonic() - timed, 1)
        timed = time.monotonic()
        failing = connection.execute(
            text(_FAILING),
            {
                "wallets": wallets,
                "count": FAILING_WEBHOOKS,
                "url": f"http://127.0.0.1:{free_port()}/refused",
            },
        ).scalars()
        waiting = {"hooks": list(failing), "per": WAITING_PER_FAILING, "body": BODY}
        for statement in _WAITING:
            connection.execute(text(statement), waiting)
        steps["failing_s"] = round(time.monotonic() - timed, 1)
        timed = time.monotonic()
        for _, definition in indexes:
            connection.execute(text(definition))
        steps["indexes_s"] = round(time.monotonic() - timed, 1)
    timed = time.monotonic()
    with ctx.db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("SET statement_timeout = 0"))
        # What autovacuum would have done over a month: statistics and the visibility map.
        connection.execute(text("VACUUM ANALYZE events, deliveries, attempts, webhooks"))
        steps["vacuum_s"] = round(time.monotonic() - timed, 1)
        counts = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in (*TABLES, "webhooks", "wallets")
        }
        counts["failed"] = connection.execute(
            text("SELECT count(*) FROM deliveries WHERE status = 'failed'")
        ).scalar()
        counts["waiting"] = connection.execute(
            text("SELECT count(*) FROM deliveries WHERE status = 'waiting'")
        ).scalar()
        size_mb = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
    steps["total_s"] = round(time.monotonic() - started, 1)
    return {"seconds": steps, "rows": counts, "database_mb": round(size_mb / 2**20)}


def _history_wallets(ctx: Context, measured: list[uuid.UUID]) -> list[uuid.UUID]:
    """WALLETS wallets (the measured tenants' first), WEBHOOKS_PER_WALLET webhooks each (the
    publisher has only its one)."""
    from shared.services.tenancy import create_wallet

    wallets = list(measured)
    with ctx.db.transaction() as session:
        for number in range(len(measured), WALLETS):
            wallet = create_wallet(session, f"history-{number}")
            wallets.append(wallet.id)
            for hook in range(WEBHOOKS_PER_WALLET):
                url = ctx.receiver.url(f"/history{hook}")
                create_webhook(session, ctx.settings, wallet.id, WebhookRequest(url), limit=100)
    return wallets


# One event per (wallet in turn, moment), spread evenly over HISTORY_DAYS up to an hour ago.
_EVENTS = f"""
INSERT INTO events (id, wallet_id, type, body, created_at)
SELECT gen_random_uuid(), (:wallets)[1 + n % cardinality(:wallets)], 'ConnectionUpdated',
       :body,
       now() - interval '{HISTORY_DAYS} days'
             + (interval '{HISTORY_DAYS} days' - interval '1 hour') * n / :count
FROM generate_series(0, :count - 1) AS n
"""
# Each event to each of its wallet's webhooks; FAILED_SHARE of them failed after 3 attempts.
_DELIVERIES = """
INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                        attempts, next_attempt_at, created_at, updated_at, last_status_code)
SELECT gen_random_uuid(), id, wallet_id, webhook_id, 'wallet', url,
       CASE WHEN failed THEN 'failed' ELSE 'delivered' END, 1, CASE WHEN failed THEN 3 ELSE 1 END,
       created_at, created_at, created_at + CASE WHEN failed THEN interval '10 s' ELSE
       interval '20 ms' END, CASE WHEN failed THEN 500 ELSE 200 END
FROM (
    SELECT e.id, e.wallet_id, h.id AS webhook_id, h.url, e.created_at, random() < :failed AS failed
    FROM events e JOIN webhooks h ON h.wallet_id = e.wallet_id
    WHERE e.wallet_id = ANY(:wallets) AND h.target = 'wallet'
      AND e.created_at <= now() - interval '1 hour'  -- the history's, not the measured ones
) AS pairs
"""
_ATTEMPTS = """
INSERT INTO attempts (delivery_id, round, number, started_at, duration_ms, status_code)
SELECT d.id, 1, number, d.created_at + (number - 1) * interval '5 s', 12.5, d.last_status_code
FROM deliveries d CROSS JOIN LATERAL generate_series(1, d.attempts) AS number
WHERE d.wallet_id = ANY(:wallets) AND d.created_at <= now() - interval '1 hour'
"""
# FAILING_WEBHOOKS of the history's webhooks (not the measured tenant's) fail: their receiver
# refuses connections, their circuit is open and a probe is due within a minute.
_FAILING = """
UPDATE webhooks SET status = 'failing', url = :url, consecutive_failures = 50,
       status_since = now() - interval '2 hours', last_failure_at = now() - interval '1 minute',
       next_probe_at = now() + random() * interval '60 s', probe_interval = 60
WHERE id IN (
    SELECT id FROM webhooks WHERE wallet_id = ANY((:wallets)[3:]) AND target = 'wallet'
    ORDER BY id LIMIT :count
)
RETURNING id
"""
# Each failing webhook's deliveries of the last hour wait in the database for its recovery.
_WAITING = (
    """
    CREATE TEMP TABLE waiting_history ON COMMIT DROP AS
    SELECT gen_random_uuid() AS event_id, h.id AS webhook_id, h.wallet_id, h.url,
           now() - interval '1 hour' + n * interval '30 s' AS created_at
    FROM webhooks h CROSS JOIN generate_series(1, :per) AS n
    WHERE h.id = ANY(:hooks)
    """,
    """
    INSERT INTO events (id, wallet_id, type, body, created_at)
    SELECT event_id, wallet_id, 'ConnectionUpdated', :body, created_at FROM waiting_history
    """,
    """
    INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                            attempts, next_attempt_at, created_at, updated_at)
    SELECT gen_random_uuid(), event_id, wallet_id, webhook_id, 'wallet', url, 'waiting', 1, 0,
           created_at, created_at, created_at
    FROM waiting_history
    """,
)


def _sweep_main(out: str) -> None:
    """In the stack's environment: beat's sweep task run in this process, timed."""
    from worker.tasks import sweep_deliveries

    timings = []
    for _ in range(SWEEPS):
        started = time.perf_counter()
        sweep_deliveries()
        timings.append(round((time.perf_counter() - started) * 1000, 1))
    with open(out, "w") as file:
        json.dump({"ms": timings}, file)


if __name__ == "__main__":
    # python -m bench.size sweep --out FILE
    if sys.argv[1:2] == ["sweep"] and "--out" in sys.argv:
        _sweep_main(sys.argv[sys.argv.index("--out") + 1])
    else:
        raise SystemExit("usage: python -m bench.size sweep --out FILE")
