"""Per-record order against a real worker and beat: a webhook with "ordering": "record" gets one
record's events in publish order through failed attempts and an open circuit, while records
stay parallel; a webhook without it does not wait."""

import json
import uuid

import pytest

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event

SERVICE_ENV = {
    "WEBHOOK_RETRY_COUNTDOWN": "1.5",
    "WEBHOOK_CIRCUIT_FAILURES": "3",
    "WEBHOOK_PROBE_INTERVAL": "1",
    "WEBHOOK_PROBE_MAX_INTERVAL": "2",
}
STATES = ["InvitationGenerated", "ConnectionRequestReceived", "ConnectionResponseSent"]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _running(worker, beat):
    """A real worker and beat (sweeping every 0.5 s)."""


def _events(connection_id: str) -> list[dict]:
    return [
        {"type": "ConnectionUpdated", "data": {**connection_event(state), "connectionId": cid}}
        for state, cid in zip(STATES, [connection_id] * len(STATES), strict=True)
    ]


def _publish(tenant, events: list[dict]) -> None:
    response = tenant.client.post(
        "/cloud-agent/events/batch", json={"events": events}, headers=tenant.headers
    )
    assert response.status_code == 202, response.json


def _arrivals(receiver, path: str) -> list[tuple[str, str]]:
    """(connectionId, state) of every request the path got, attempts included, in order."""
    bodies = [json.loads(r.body) for r in receiver.at(path)]
    return [(b["data"]["connectionId"], b["data"]["state"]) for b in bodies]


def _all_delivered(client, count: int):
    def delivered():
        rows = client.get(DELIVERIES, query_string={"limit": 1000}, headers=admin_headers())
        statuses = [row["status"] for row in rows.json["contents"]]
        return len(statuses) == count and set(statuses) == {"delivered"}

    wait_until(delivered, f"{count} deliveries delivered", timeout=60)


def test_a_failed_first_attempt_holds_the_records_next_events(client, tenant, receiver):
    tenant.add_webhook(receiver.url("/ordered"), ordering="record")
    tenant.add_webhook(receiver.url("/unordered"))
    receiver.behave("/ordered", statuses=[500])
    receiver.behave("/unordered", statuses=[500])
    record = str(uuid.uuid4())
    _publish(tenant, _events(record))

    receiver.wait_for("/ordered", 4)
    _all_delivered(client, 6)
    ordered = [state for _, state in _arrivals(receiver, "/ordered")]
    assert ordered == [STATES[0], STATES[0], STATES[1], STATES[2]]
    # Without ordering the retry of whichever failed comes last: the receiver is moved back.
    unordered = [STATES.index(state) for _, state in _arrivals(receiver, "/unordered")]
    assert len(unordered) == 4 and unordered != sorted(unordered)
    webhook = tenant.client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json
    assert [hook.get("ordering") for hook in webhook["contents"]] == ["record", None]


def test_records_stay_parallel(client, tenant, receiver):
    tenant.add_webhook(receiver.url("/ordered"), ordering="record")
    receiver.behave("/ordered", statuses=[500])
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    _publish(tenant, _events(first)[:2] + _events(second)[:2])

    receiver.wait_for("/ordered", 5)
    _all_delivered(client, 4)
    arrivals = _arrivals(receiver, "/ordered")
    failed = arrivals[0]  # whichever arrived first got the 500
    other = [a for a in arrivals if a[0] != failed[0]]
    retry_at = arrivals.index(failed, 1)
    # The other record's two events went while the failed one waited out its countdown.
    assert len(other) == 2 and all(arrivals.index(a) < retry_at for a in other)
    held = [a for a in arrivals if a[0] == failed[0]]
    assert [state for _, state in held] == [STATES[0], STATES[0], STATES[1]]


def test_order_holds_while_the_circuit_opens_and_closes(client, tenant, receiver):
    webhook = tenant.add_webhook(receiver.url("/ordered"), ordering="record")
    receiver.behave("/ordered", statuses=[500] * 4)
    records = [str(uuid.uuid4()) for _ in range(3)]
    _publish(tenant, [event for record in records for event in _events(record)])

    def opened():
        hooks = tenant.client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json
        return [h for h in hooks["contents"] if h["id"] == webhook["id"]][0]["status"]

    wait_until(lambda: opened() == "failing", "the circuit to open", timeout=30)
    _all_delivered(client, 9)
    assert opened() == "active"
    arrivals = _arrivals(receiver, "/ordered")
    for record in records:
        seen = [STATES.index(state) for cid, state in arrivals if cid == record]
        assert seen == sorted(seen), (record, seen)
        assert set(seen) == {0, 1, 2}
