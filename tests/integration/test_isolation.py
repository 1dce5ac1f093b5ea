"""A slow receiver holds at most its share of worker threads; the others are not delayed."""

import time

import pytest

from tests.helpers import admin_headers, connection_event, onboard_tenant
from tests.processes import start_worker
from tests.receiver import Receiver

SERVICE_ENV = {
    "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK": "2",
    "WEBHOOK_MAX_IN_FLIGHT_SLOW": "3",
    "WEBHOOK_TIMEOUT": "3",
}
SLOW_SECONDS = 1.5


@pytest.fixture(scope="module")
def small_worker(service_env, logdir):
    process = start_worker(service_env, logdir, concurrency=4)
    yield process
    process.stop()


def overlapping(arrivals: list[float], duration: float) -> int:
    """The most requests that were being answered at the same moment."""
    return max(sum(1 for other in arrivals if a <= other < a + duration) for a in arrivals)


def test_a_slow_receiver_does_not_delay_the_others(client, small_worker):
    slow, fast = Receiver(), Receiver()
    try:
        slow.behave("/slow", delay=SLOW_SECONDS)
        sluggish = onboard_tenant(client, "sluggish")
        healthy = onboard_tenant(client, "healthy")
        sluggish.add_webhook(slow.url("/slow"))
        healthy.add_webhook(fast.url("/fast"))
        for _ in range(8):
            assert sluggish.publish("ConnectionUpdated", connection_event()).status_code == 202
        # The first attempts show the receiver is slow; from then on it holds two of the four
        # worker threads at most, slow and unproven webhooks three together, and the other
        # wallet's (unproven) webhook finds a free one.
        slow.wait_for("/slow", 5, timeout=30)
        published = time.time()
        assert healthy.publish("ConnectionUpdated", connection_event()).status_code == 202
        (arrived,) = fast.wait_for("/fast", 1, timeout=10)
        assert arrived.at - published < 1.0

        arrivals = [r.at for r in slow.wait_for("/slow", 8, timeout=60)]
        assert len(arrivals) == 8
        # Once known to be slow (after the first four), never more than two at a time.
        assert overlapping(arrivals[4:], SLOW_SECONDS) <= 2
        # Waiting for a free slot spent no attempt: each delivery took exactly one.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = client.get(
                "/cloud-agent/events/deliveries?limit=100", headers=admin_headers()
            ).json["contents"]
            if all(row["status"] == "delivered" for row in rows):
                break
            time.sleep(0.2)
        assert len(rows) == 9
        assert {(row["status"], row["attempts"]) for row in rows} == {("delivered", 1)}
    finally:
        slow.close()
        fast.close()
