"""Fairness between tenants (contract §10): one tenant's burst, or its slow receiver, beside
another tenant's steady stream, measured before and during it in the same run.

- fairness: tenant B publishes 10 events/s to its webhook on the fast receiver throughout;
  `--duration` seconds in, tenant A publishes 5,000 events at once (50 batches of 100 through
  POST /events/batch, 8 connections) to its own webhook on the fast receiver. B's publish →
  arrival percentiles before the burst and from its start until A's last delivery arrived;
  how long A's 5,000 took, from the first batch sent to the last arrival.
- slow_healthy: another tenant publishes 50 events/s to the fast receiver throughout;
  `--duration` seconds in, 3,000 events go at once to a webhook whose receiver answers 200
  after 1.5 s (4 at a time, so most wait in the database). Over the next `window` seconds:
  the steady tenant's percentiles against its own before, and the parks and releases of the
  slow webhook's deliveries (bench.transitions) per delivery that reached the receiver.
"""

from __future__ import annotations

import time

from bench import transitions
from bench.beside import publish_batches, steady_beside, tenant, wait_arrivals
from bench.context import Context

FAIR_RATE = 10.0
BURST = 5_000
SLOW_RATE = 50.0
SLOW_EVENTS = 3_000
SLOW_PATH = "/slow1500"  # the receiver answers after 1.5 s


def fairness(ctx: Context) -> dict:
    burster = tenant(ctx, "burst", "/burst")
    steady = tenant(ctx, "steady", "/steady")

    def burst(port: int) -> dict:
        sent = publish_batches(port, burster.api_key, BURST)
        ids = set(sent["ids"])
        arrived = wait_arrivals(ctx, "/burst", ids, ctx.options.window + 120)
        last = max((arrived[i] for i in ids if i in arrived), default=None)
        requests = ctx.receiver.all_arrivals("/burst")
        return {
            "began": sent["began"],
            # Until the last of A's deliveries arrived (or the bench stopped waiting).
            "ended": last if len(arrived.keys() & ids) == len(ids) else time.time(),
            "events": BURST,
            "accepted": len(ids),
            "refused": sent["refused"],
            "publish_s": round(sent["accepted_at"] - sent["began"], 2),
            "arrived": len(arrived.keys() & ids),
            "drain_s": round(last - sent["began"], 2) if last else None,
            "duplicates": len(requests) - len({event for event, _ in requests}),
            "counted_at": time.time(),
        }

    transitions.install(ctx.db)
    try:
        result = steady_beside(ctx, "fairness", steady, "/steady", FAIR_RATE, burst)
        burst = result["disturbance"]
        arrived = {event for event, _ in ctx.receiver.all_arrivals("/burst")}
        counted = transitions.count(ctx.db, burster.webhook_id, burst["counted_at"], arrived)
    finally:
        transitions.drop(ctx.db)
    burst["transitions"] = counted
    return result


def slow_healthy(ctx: Context) -> dict:
    slow = tenant(ctx, "slow", SLOW_PATH)
    steady = tenant(ctx, "beside_slow", "/beside_slow")
    window = ctx.options.window

    def slow_burst(port: int) -> dict:
        sent = publish_batches(port, slow.api_key, SLOW_EVENTS)
        time.sleep(max(0.0, sent["began"] + window - time.time()))
        return {
            "began": sent["began"],
            "ended": sent["began"] + window,
            "events": SLOW_EVENTS,
            "accepted": len(sent["ids"]),
            "publish_s": round(sent["accepted_at"] - sent["began"], 2),
        }

    transitions.install(ctx.db)
    try:
        result = steady_beside(ctx, "slow_healthy", steady, "/beside_slow", SLOW_RATE, slow_burst)
        began, ended = result["disturbance"]["began"], result["disturbance"]["ended"]
        # Arrivals on the slow path in the window (first of each event; repeats are counted).
        raw = ctx.receiver.all_arrivals(SLOW_PATH)
        arrived = {event for event, at in raw if began <= at <= ended}
        counted = transitions.count(ctx.db, slow.webhook_id, ended, arrived)
    finally:
        transitions.drop(ctx.db)
    stats = ctx.receiver.stats(SLOW_PATH)
    result["slow"] = {
        "window_s": window,
        "arrived": len(arrived),
        "requests": sum(1 for _, at in raw if began <= at <= ended),
        "peak_concurrent": stats["peak_concurrent"],
        "transitions": counted,
    }
    return result
