"""Fairness and scale-out (contract §10), with several real worker processes: a tenant's burst
waits behind itself; a webhook's cap on attempts at once and its rate limit hold across every
worker; the global webhook's failures for one wallet hold no other wallet's deliveries.

Every process runs as the Procfile runs it; events are published over HTTP.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import Publisher, Stack, wait_for_arrivals
from tests.helpers import connection_event

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVICE_ENV = {
    "WALLET_QUEUE_SHARE": "20",
    "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK": "3",
}


def _publish_batches(tenant, batches: int, size: int = 100) -> list[str]:
    ids = []
    for _ in range(batches):
        events = [{"type": "ConnectionUpdated", "data": connection_event()} for _ in range(size)]
        answer = tenant.api.call("POST", "/events/batch", tenant.headers, {"events": events})
        assert answer.status_code == 202, answer.text
        ids += [event["id"] for event in answer.json()["events"]]
    return ids


def _arrival_times(receiver, path: str) -> dict[str, float]:
    """When each event first reached `path`."""
    first = {}
    for request in receiver.at(path):
        event = {k.lower(): v for k, v in request.headers.items()}["webhook-id"]
        first.setdefault(event, request.at)
    return first


def test_a_burst_waits_behind_itself(stack, receiver):
    web, _ = stack.web(), stack.beat()
    burst, steady = web.api.onboard("burst"), web.api.onboard("steady")
    burst.add_webhook(receiver.url("/burst"))
    steady.add_webhook(receiver.url("/steady"))
    # A backlog of 1,500 deliveries, then the other tenant's events behind it.
    burst_ids = _publish_batches(burst, 15)
    steady_ids = Publisher(steady, threads=1).start(count=5)
    steady_ids.join()
    stack.worker()
    assert wait_for_arrivals(receiver, "/steady", 5, timeout=60) == 5
    wait_for_arrivals(receiver, "/burst", len(burst_ids), timeout=120)
    burst_times = sorted(_arrival_times(receiver, "/burst").values())
    steady_times = _arrival_times(receiver, "/steady")
    last_steady = max(steady_times[event] for event in steady_ids.accepted)
    ahead = sum(1 for at in burst_times if at < last_steady)
    print(f"[fairness] burst deliveries that arrived before the other tenant's last: {ahead}")
    # The steady tenant waited behind the burst's share of the first queue, not its backlog.
    assert ahead < len(burst_ids) // 4


def test_a_webhooks_cap_holds_across_workers(stack, receiver, service_env):
    web, _ = stack.web(), stack.beat()
    workers = [stack.worker() for _ in range(3)]
    tenant = web.api.onboard("slow")
    tenant.add_webhook(receiver.url("/slow"))
    receiver.behave("/slow", delay=1.0)
    Publisher(tenant, threads=4).start(count=30).join()
    arrived = wait_for_arrivals(receiver, "/slow", 30, timeout=120)
    most = receiver.most_running("/slow")
    print(f"[cap across {len(workers)} workers] most at once {most}, arrived {arrived}")
    assert arrived == 30
    assert most <= int(service_env["WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK"])


def test_a_rate_limit_holds_across_workers(stack, receiver):
    web, _ = stack.web(), stack.beat()
    stack.worker(), stack.worker()
    tenant = web.api.onboard("paced")
    hook = tenant.add_webhook(receiver.url("/paced"))
    patched = tenant.api.call(
        "PATCH", f"/events/webhooks/{hook['id']}", tenant.headers, {"rateLimit": 20}
    )
    assert patched.status_code == 200 and patched.json()["rateLimit"] == 20, patched.text
    Publisher(tenant, threads=4).start(count=100).join()
    assert wait_for_arrivals(receiver, "/paced", 100, timeout=120) == 100
    times = sorted(request.at for request in receiver.at("/paced"))
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    spread = times[-1] - times[0]
    print(f"[rate limit 20/s] most arrivals in a second {busiest}, 100 over {spread:.1f}s")
    assert busiest <= 22
    assert spread >= 100 / 20 - 1.5


def test_the_global_webhooks_failures_for_one_wallet_hold_only_that_wallet(
    service_env, receiver, tmp_path
):
    env = {**service_env, "GLOBAL_WEBHOOK_URL": receiver.url("/global")}
    env.update(WEBHOOK_CIRCUIT_FAILURES="3", WEBHOOK_RETRY_COUNTDOWN="0.5")
    stack = Stack(env, tmp_path / "logs")
    stack.logdir.mkdir()
    try:
        web, _ = stack.web(), stack.beat()
        stack.worker()
        rejected, served = web.api.onboard("rejected"), web.api.onboard("served")
        # The global receiver turns away one wallet's events (say, its tenant's plan ended).
        receiver.behave(
            "/global",
            decide=lambda _headers, body: (
                500 if json.loads(body)["walletId"] == rejected.wallet_id else 200
            ),
        )
        Publisher(rejected, threads=2).start(count=10).join()
        time.sleep(3)  # its row of the global webhook fails and opens
        later = Publisher(served, threads=2).start(count=10)
        later.join()
        arrived = _arrival_times(receiver, "/global")
        deadline = time.monotonic() + 30
        while not set(later.accepted) <= set(arrived) and time.monotonic() < deadline:
            time.sleep(0.2)
            arrived = _arrival_times(receiver, "/global")
        assert set(later.accepted) <= set(arrived), "the other wallet's global deliveries waited"
    finally:
        stack.close()
