"""Per-record order survives a worker killed in the middle of an attempt: the record's next
event waits until the lost attempt is declared lost and made again."""

import json
import signal
import uuid

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event

SERVICE_ENV = {"WEBHOOK_TIMEOUT": "3", "WEBHOOK_RETRY_COUNTDOWN": "0.5"}
STATES = ["InvitationGenerated", "ConnectionRequestReceived", "ConnectionResponseSent"]


def test_a_worker_killed_mid_attempt_keeps_the_record_in_order(stack, client, tenant, receiver):
    tenant.add_webhook(receiver.url("/ordered"), ordering="record")
    receiver.behave("/ordered", delay=2.5)  # the first attempt is still running at the kill
    record = str(uuid.uuid4())
    events = [
        {"type": "ConnectionUpdated", "data": {**connection_event(state), "connectionId": record}}
        for state in STATES
    ]
    stack.beat()
    worker = stack.worker()
    published = client.post(
        "/cloud-agent/events/batch", json={"events": events}, headers=tenant.headers
    )
    assert published.status_code == 202
    receiver.wait_for("/ordered", 1, timeout=30)
    worker.kill(signal.SIGKILL)
    receiver.behave("/ordered")  # answers at once from now on
    stack.worker()

    def delivered():
        rows = client.get(DELIVERIES, query_string={"limit": 10}, headers=admin_headers()).json
        return [row["status"] for row in rows["contents"]] == ["delivered"] * 3

    wait_until(delivered, "the three deliveries delivered", timeout=120)
    states = [json.loads(r.body)["data"]["state"] for r in receiver.at("/ordered")]
    assert states == [STATES[0], STATES[0], STATES[1], STATES[2]]
