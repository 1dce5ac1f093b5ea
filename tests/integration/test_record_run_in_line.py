"""A record's next events run in the task whose delivery ended, with no message of their own:
what a receiver sees is the same as with one task each, and an attempt refused there still gets
its retry. No beat runs here, so no sweep sends anything a worker left behind."""

import json
import uuid

import pytest

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event

SERVICE_ENV = {"WEBHOOK_RETRY_COUNTDOWN": "0.5"}
STATES = ["InvitationGenerated", "ConnectionRequestReceived", "ConnectionResponseSent"]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _running(worker):
    """A real worker, and no beat."""


def _publish(tenant, records: list[str], states: list[str] = STATES) -> None:
    events = [
        {"type": "ConnectionUpdated", "data": {**connection_event(state), "connectionId": record}}
        for state in states
        for record in records
    ]
    response = tenant.client.post(
        "/cloud-agent/events/batch", json={"events": events}, headers=tenant.headers
    )
    assert response.status_code == 202, response.json


def _delivered(client, count: int) -> None:
    def delivered():
        rows = client.get(DELIVERIES, query_string={"limit": 1000}, headers=admin_headers())
        statuses = [row["status"] for row in rows.json["contents"]]
        return len(statuses) == count and set(statuses) == {"delivered"}

    wait_until(delivered, f"{count} deliveries delivered", timeout=60)


def _states_of(receiver, path: str) -> dict[str, list[str]]:
    """Per record, the states of every request it got (attempts included), in arrival order."""
    arrived: dict[str, list[str]] = {}
    for request in receiver.at(path):
        data = json.loads(request.body)["data"]
        arrived.setdefault(data["connectionId"], []).append(data["state"])
    return arrived


def test_a_refused_attempt_of_a_records_next_event_gets_its_retry(client, tenant, receiver):
    tenant.add_webhook(receiver.url("/ordered"), ordering="record")
    # The first event is accepted; its record's second, run in line, is refused once.
    receiver.behave("/ordered", statuses=[200, 500])
    record = str(uuid.uuid4())
    _publish(tenant, [record])
    _delivered(client, 3)
    assert _states_of(receiver, "/ordered") == {
        record: [STATES[0], STATES[1], STATES[1], STATES[2]]
    }


def test_many_records_each_arrive_in_order(client, tenant, receiver):
    tenant.add_webhook(receiver.url("/many"), ordering="record")
    records = [str(uuid.uuid4()) for _ in range(30)]
    _publish(tenant, records)
    _delivered(client, 3 * len(records))
    assert _states_of(receiver, "/many") == {record: STATES for record in records}


def test_a_long_record_goes_on_in_tasks_of_its_own_past_what_one_task_runs(
    client, tenant, receiver
):
    tenant.add_webhook(receiver.url("/long"), ordering="record")
    states = [STATES[index % len(STATES)] for index in range(20)]
    record = str(uuid.uuid4())
    _publish(tenant, [record], states)
    _delivered(client, len(states))
    assert _states_of(receiver, "/long") == {record: states}
