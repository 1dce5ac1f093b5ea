"""Producer scenarios: batch ingest beside single-event ingest, and per-record ordered delivery
beside unordered delivery of the same load."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid

from sqlalchemy import text

from bench import transitions
from bench.context import Context
from bench.fixtures import clear_events, connection_event, flush_redis, make_tenant
from bench.procs import free_port

BATCH_SIZE = 100
CLIENT_THREADS = 8
RECORDS, STEPS = 1_000, 5
STATES = [
    "InvitationGenerated",
    "ConnectionRequestSent",
    "ConnectionRequestReceived",
    "ConnectionResponseSent",
    "ConnectionResponseReceived",
]


def _closed_loop(port: int, path: str, key: str, body, seconds: float) -> int:
    """Events accepted by CLIENT_THREADS keep-alive clients posting for `seconds`."""
    accepted = [0] * CLIENT_THREADS
    until = time.time() + seconds

    def run(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json", "apikey": key}
        while time.time() < until:
            events = body()
            conn.request("POST", path, json.dumps(events), headers)
            response = conn.getresponse()
            response.read()
            if response.status == 202:
                accepted[number] += len(events["events"]) if "events" in events else 1
        conn.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(accepted)


def _one() -> dict:
    return {"type": "ConnectionUpdated", "data": connection_event()}


def batch(ctx: Context) -> dict:
    """POST /events and POST /events/batch (100 events) through gunicorn, in turn, no worker."""
    seconds = ctx.options.duration
    port = free_port()
    web = ctx.stack.web(port)
    key = ctx.tenants["drain"].api_key
    result = {"connections": CLIENT_THREADS, "seconds": seconds, "batch_size": BATCH_SIZE}
    try:
        for name, path, body in (
            ("single", "/cloud-agent/events", _one),
            ("batch", "/cloud-agent/events/batch", lambda: {"events": [_one()] * BATCH_SIZE}),
        ):
            clear_events(ctx.db)
            flush_redis(ctx.redis_url)
            _closed_loop(port, path, key, body, min(2.0, seconds))  # warm-up, not counted
            accepted = _closed_loop(port, path, key, body, seconds)
            result[f"{name}_rate"] = round(accepted / seconds, 1)
    finally:
        ctx.registry.stop(web)
        clear_events(ctx.db)
        flush_redis(ctx.redis_url)
    result["ratio"] = round(result["batch_rate"] / result["single_rate"], 2)
    return result


def ordered(ctx: Context) -> dict:
    """1,000 records × 5 events to an unordered webhook, then to an ordered one: deliveries/s
    from the first attempt to the last delivery, and inversions seen by the receiver."""
    from shared.outbox import send_after_commit
    from shared.publishing import EventInput, publish_events
    from worker.dispatch import send_deliveries

    result = {"records": RECORDS, "events_per_record": STEPS, "workers": ctx.options.workers}
    for ordering in ("none", "record"):
        path = f"/{ordering}"
        tenant = ctx.tenants.get(f"order-{ordering}") or make_tenant(
            ctx.db, ctx.settings, f"order-{ordering}", ctx.receiver.url(path), ordering=ordering
        )
        ctx.tenants[f"order-{ordering}"] = tenant
        clear_events(ctx.db)
        flush_redis(ctx.redis_url)
        ctx.receiver.reset()
        records = [str(uuid.uuid4()) for _ in range(RECORDS)]
        sequence: dict[str, list[str]] = {record: [] for record in records}
        # Each step of every record, a hundred events per batch: a record's events are spread
        # over the backlog, as state changes of many records interleave in an agent.
        for step in range(STEPS):
            for start in range(0, RECORDS, BATCH_SIZE):
                chunk = records[start : start + BATCH_SIZE]
                events = [
                    EventInput(
                        tenant.wallet_id,
                        "ConnectionUpdated",
                        {**connection_event(), "connectionId": record, "state": STATES[step]},
                    )
                    for record in chunk
                ]
                with ctx.db.statements() as conn:
                    published = publish_events(conn, ctx.settings, events)
                send_after_commit(ctx.db, send_deliveries, published.deliveries)
                for record, envelope in zip(
                    chunk, json.loads(published.body)["events"], strict=True
                ):
                    sequence[record].append(envelope["id"])
        # Counted from here: a delivery stored waiting behind its record is an insert, not a
        # park; its release, and any park at the webhook's cap and its release, are counted.
        transitions.install(ctx.db)
        workers = ctx.stack.workers(ctx.options.workers)
        beat = ctx.stack.beat()
        try:
            total = RECORDS * STEPS
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and _delivered(ctx) < total:
                time.sleep(0.5)
        finally:
            ctx.registry.stop(*workers, beat, grace=5.0)
        moved = transitions.count(ctx.db, tenant.webhook_id, time.time(), set())
        transitions.drop(ctx.db)
        first, last, delivered = _window(ctx)
        arrivals = ctx.receiver.arrivals(path)
        inversions = sum(
            1
            for ids in sequence.values()
            for earlier, later in zip(ids, ids[1:], strict=False)
            if earlier in arrivals and later in arrivals and arrivals[later] < arrivals[earlier]
        )
        window = (last - first) if first and last else 0.0
        result[ordering] = {
            "delivered": delivered,
            "seconds": round(window, 3),
            "rate": round(delivered / window, 1) if window else 0.0,
            "inversions": inversions,
            "parks": moved["rows"].get("park", 0),
            "releases": moved["rows"].get("release", 0),
            "release_statements": moved["statements"].get("release", 0),
        }
    clear_events(ctx.db)
    result["ratio"] = round(result["record"]["rate"] / result["none"]["rate"], 2)
    return result


def _delivered(ctx: Context) -> int:
    with ctx.db.engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM deliveries WHERE status IN ('delivered', 'failed')")
        ).scalar()


def _window(ctx: Context) -> tuple[float | None, float | None, int]:
    with ctx.db.engine.connect() as conn:
        first = conn.execute(text("SELECT min(started_at) FROM attempts")).scalar()
        last, delivered = conn.execute(
            text("SELECT max(updated_at), count(*) FROM deliveries WHERE status = 'delivered'")
        ).one()
    return (
        first.timestamp() if first else None,
        last.timestamp() if last else None,
        delivered,
    )
