"""The operator's side of receiver health, against a real worker and beat: operational events
(signed) on OPERATIONS_WEBHOOK_URL, disabling after a long outage, enable, and the metrics."""

import json

import pytest
from standardwebhooks import Webhook as Verifier

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event
from tests.receiver import Receiver

OPS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def operator():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def service_env(base_env, operator):
    return {
        **base_env,
        "OPERATIONS_WEBHOOK_URL": operator.url("/ops"),
        "OPERATIONS_WEBHOOK_SECRET": OPS_SECRET,
        "WEBHOOK_RETRY_COUNTDOWN": "0.5",
        "WEBHOOK_CIRCUIT_FAILURES": "2",
        "WEBHOOK_PROBE_INTERVAL": "1",
        "WEBHOOK_PROBE_MAX_INTERVAL": "2",
        "WEBHOOK_DISABLE_AFTER": "8",
    }


@pytest.fixture(autouse=True)
def _running(worker, beat, operator):
    operator.requests.clear()


def _operational(operator, event_type: str, count: int = 1, timeout: float = 30) -> list[dict]:
    """The operational events of a type received so far, each signature verified."""

    def received():
        events = []
        for request in operator.at("/ops"):
            Verifier(OPS_SECRET).verify(request.body, request.headers)  # raises if unsigned
            event = json.loads(request.body)
            if event["type"] == event_type:
                events.append(event)
        return events if len(events) >= count else None

    return wait_until(received, f"{count} {event_type}", timeout)


def test_the_operator_learns_a_webhook_failed_and_recovered(client, tenant, receiver, operator):
    receiver.behave("/flaky", statuses=[500, 500, 500])
    webhook = tenant.add_webhook(receiver.url("/flaky"))
    for _ in range(2):
        tenant.publish("ConnectionUpdated", connection_event())
    (failing,) = _operational(operator, "WebhookFailing")
    assert failing["data"]["webhookId"] == webhook["id"]
    assert failing["data"]["status"] == "failing"
    assert failing["walletId"] == tenant.wallet_id
    (recovered,) = _operational(operator, "WebhookRecovered")
    assert recovered["data"]["webhookId"] == webhook["id"]
    # Both events reach the receiver in the end, none more than three times.
    wait_until(lambda: len({r.headers["webhook-id"] for r in receiver.at("/flaky")}) == 2, "both")
    rows = client.get(DELIVERIES, headers=tenant.headers).json["contents"]
    assert all(row["attempts"] <= 3 for row in rows)


def test_a_delivery_out_of_attempts_is_reported(client, tenant, receiver, operator):
    receiver.behave("/broken", then=500)
    tenant.add_webhook(receiver.url("/broken"))
    event = tenant.publish("ConnectionUpdated", connection_event()).json
    (failed,) = _operational(operator, "DeliveryFailed")
    assert failed["data"]["eventId"] == event["id"]
    assert failed["data"]["attempts"] == 3
    assert failed["data"]["lastStatusCode"] == 500


def test_a_webhook_failing_too_long_is_disabled_and_can_be_enabled(
    client, tenant, receiver, operator
):
    receiver.behave("/gone", then=503)
    webhook = tenant.add_webhook(receiver.url("/gone"))
    for _ in range(4):
        tenant.publish("ConnectionUpdated", connection_event())
    (disabled,) = _operational(operator, "WebhookDisabled", timeout=40)
    assert disabled["data"]["webhookId"] == webhook["id"]
    listed = client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json["contents"]
    assert listed[0]["status"] == "disabled"
    rows = client.get(DELIVERIES, headers=tenant.headers).json["contents"]
    assert rows and {row["status"] for row in rows} == {"failed"}
    metrics = client.get("/cloud-agent/_system/metrics").get_data(as_text=True)
    assert 'webhooks_by_status{status="disabled"} 1.0' in metrics
    # A new event is recorded but not attempted.
    before = len(receiver.at("/gone"))
    tenant.publish("ConnectionUpdated", connection_event())

    def all_failed():
        rows = client.get(DELIVERIES, headers=tenant.headers).json["contents"]
        return len(rows) == 5 and all(row["status"] == "failed" for row in rows)

    wait_until(all_failed, "the new delivery to fail without an attempt")
    assert len(receiver.at("/gone")) == before
    enabled = client.post(
        f"/cloud-agent/events/webhooks/{webhook['id']}/enable", headers=admin_headers()
    )
    assert enabled.status_code == 200 and enabled.json["status"] == "active"
