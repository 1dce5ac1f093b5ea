"""locks: a tenant recovers 20,000 failed deliveries while another tenant publishes, and the
global webhook fails for every wallet (contract §10: no API call holds a lock that blocks
another tenant's publish).

The failed deliveries are stored directly (events and deliveries rows, an hour old, status
`failed`, on the recovering tenant's webhook on the fast receiver). The stack runs with
GLOBAL_WEBHOOK_URL at a port where nothing listens, so every event published also owes the
publishing wallet's global row a delivery that is refused (its circuit opens). Another tenant
publishes 50 events/s throughout; `--duration` seconds in, the recovering tenant calls
`POST /events/webhooks/{id}/recover` for the last two hours. Figures: the publishing tenant's
request latency before, during and after the recover call; how long the call took and how many
deliveries it sent again; how many of those reached the receiver by the end.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.activity import LockWaits
from bench.beside import call, steady_beside, tenant
from bench.context import Context
from bench.procs import free_port
from bench.stack import Stack

FAILED = 20_000
PUBLISH_RATE = 50.0
SEED = """
WITH new_events AS (
    INSERT INTO events (id, wallet_id, type, body, created_at)
    SELECT id, CAST(:wallet AS uuid), 'ConnectionUpdated',
           json_build_object('id', id, 'type', 'ConnectionUpdated',
                             'walletId', CAST(:wallet AS text),
                             'data', json_build_object('state', 'InvitationGenerated'))::text,
           created_at
    FROM (SELECT gen_random_uuid() AS id,
                 now() - interval '1 hour' + n * interval '1 millisecond' AS created_at
          FROM generate_series(1, :count) AS n) AS fresh
    RETURNING id, created_at
)
INSERT INTO deliveries (id, event_id, wallet_id, webhook_id, target, url, status, round,
                        attempts, next_attempt_at, last_status_code, last_error, created_at,
                        updated_at)
SELECT gen_random_uuid(), id, CAST(:wallet AS uuid), CAST(:webhook AS uuid), 'wallet', :url,
       'failed', 1, 3, created_at,
       500, 'HTTP 500', created_at, created_at
FROM new_events
"""
GLOBAL_ROWS = "SELECT status, count(*) FROM webhooks WHERE target = 'global' GROUP BY status"


def locks(ctx: Context) -> dict:
    recovering = tenant(ctx, "recovering", "/recovered")
    publisher = tenant(ctx, "publisher", "/publisher")
    refused = f"http://127.0.0.1:{free_port()}/global"  # nothing listens there
    stack = Stack(ctx.registry, {**ctx.stack.env, "GLOBAL_WEBHOOK_URL": refused})
    seeded = {}

    def seed() -> None:
        started = time.monotonic()
        params = {"wallet": str(recovering.wallet_id), "webhook": str(recovering.webhook_id),
                  "url": recovering.url, "count": FAILED}  # fmt: skip
        with ctx.db.engine.begin() as connection:
            connection.execute(text(SEED), params)
        with ctx.db.engine.begin() as connection:
            connection.execute(text("ANALYZE events, deliveries"))
        seeded["seconds"] = round(time.monotonic() - started, 1)

    def recover(port: int) -> dict:
        with ctx.db.engine.connect() as connection:
            global_rows = dict(connection.execute(text(GLOBAL_ROWS)).all())
        since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        path = f"/cloud-agent/events/webhooks/{recovering.webhook_id}/recover"
        began = time.time()
        status, answer = call(port, "POST", path, recovering.api_key, {"since": since})
        ended = time.time()
        return {
            "began": began,
            "ended": ended,
            "status": status,
            "redelivered": (answer or {}).get("redelivered"),
            "call_s": round(ended - began, 2),
            "global_rows_before": global_rows,
        }

    waits = LockWaits(ctx.settings.database_url).start()
    try:
        result = steady_beside(
            ctx, "locks", publisher, "/publisher", PUBLISH_RATE, recover, stack, prepare=seed
        )
    finally:
        result_waits = waits.stop()
    result["lock_waits"] = result_waits
    with ctx.db.engine.connect() as connection:
        result["global_rows_after"] = dict(connection.execute(text(GLOBAL_ROWS)).all())
        result["global_deliveries"] = dict(
            connection.execute(
                text("SELECT status, count(*) FROM deliveries WHERE target = 'global' GROUP BY 1")
            ).all()
        )
    result["failed_seeded"] = FAILED
    result["seed_s"] = seeded.get("seconds")
    result["recovered_arrived"] = len(ctx.receiver.arrivals("/recovered"))
    return result
