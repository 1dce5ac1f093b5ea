"""The real retry spacing of the contract: 3 attempts, 5 s apart (±1 s), at the receiver."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest

from tests.helpers import connection_event

SERVICE_ENV = {"WEBHOOK_RETRY_COUNTDOWN": "5"}
DELIVERIES = "/cloud-agent/events/deliveries"


@pytest.mark.slow
def test_attempts_against_a_failing_receiver_arrive_five_seconds_apart(
    client, tenant, receiver, worker
):
    receiver.behave("/down", then=500)
    tenant.add_webhook(receiver.url("/down"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202

    arrived = receiver.wait_for("/down", 3, timeout=40)
    assert len(arrived) == 3
    gaps = [later.at - earlier.at for earlier, later in pairwise(arrived)]
    assert all(4.0 <= gap <= 6.0 for gap in gaps), gaps

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        [delivery] = client.get(
            DELIVERIES, query_string={"eventId": published.json["id"]}, headers=tenant.headers
        ).json["contents"]
        if delivery["status"] not in ("pending", "in_flight"):
            break
        time.sleep(0.1)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    time.sleep(6.5)  # a fourth attempt would be due 5 s after the third
    assert len(receiver.at("/down")) == 3
