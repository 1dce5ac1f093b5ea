"""What a receiver's answers do to its webhook (Standard Webhooks' delivery rules), against a
real worker and beat: 410 Gone disables it at once, another 4xx fails only the delivery, 502
and 504 hold it like a Retry-After, and a failing webhook with nothing owed to it is probed
with a signed WebhookPing."""

import json
import socket
import time

import pytest

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event
from tests.receiver import Receiver

SERVICE_ENV = {
    "WEBHOOK_RETRY_COUNTDOWN": "0.5",
    "WEBHOOK_CIRCUIT_FAILURES": "3",
    "WEBHOOK_PROBE_INTERVAL": "1",
    "WEBHOOK_PROBE_MAX_INTERVAL": "2",
}
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _running(worker, beat):
    """A real worker and beat (sweeping every 0.5 s)."""


def _webhook(tenant) -> dict:
    (webhook,) = tenant.client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json[
        "contents"
    ]
    return webhook


def _deliveries(client) -> list[dict]:
    response = client.get(DELIVERIES, query_string={"limit": 1000}, headers=admin_headers())
    return response.json["contents"]


def test_410_gone_disables_the_webhook_at_once(client, tenant, receiver):
    receiver.behave("/gone", then=410)
    tenant.add_webhook(receiver.url("/gone"))
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    webhook = wait_until(
        lambda: (hook := _webhook(tenant))["status"] == "disabled" and hook, "disabled"
    )
    assert "410" in webhook["statusReason"]
    assert len(receiver.at("/gone")) == 1  # no retry to a receiver that said it is gone
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    time.sleep(2)
    assert len(receiver.at("/gone")) == 1


def test_another_4xx_fails_the_delivery_and_leaves_the_webhook_active(client, tenant, receiver):
    receiver.behave("/refuses", then=422)
    tenant.add_webhook(receiver.url("/refuses"))
    for _ in range(4):
        assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    rows = wait_until(
        lambda: (rows := _deliveries(client)) and all(r["status"] == "failed" for r in rows)
        and len(rows) == 4 and rows,
        "four deliveries failed",
    )  # fmt: skip
    assert all(row["attempts"] == 3 for row in rows)  # every attempt made: no circuit
    assert _webhook(tenant)["status"] == "active"


@pytest.mark.parametrize("status", [502, 504])
def test_a_gateway_error_with_retry_after_holds_the_webhook(client, tenant, receiver, status):
    receiver.behave(f"/gw{status}", statuses=[status], headers={"Retry-After": "3"})
    tenant.add_webhook(receiver.url(f"/gw{status}"))
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    first, second = receiver.wait_for(f"/gw{status}", 2, timeout=20)
    assert second.at - first.at >= 3.0 - 0.1


def test_a_failing_webhook_with_nothing_owed_is_probed_with_a_ping(client, tenant):
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    tenant.add_webhook(f"http://127.0.0.1:{port}/back")
    for _ in range(3):
        assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    wait_until(lambda: _webhook(tenant)["status"] == "failing", "failing", timeout=30)
    # Its deliveries end failed, one after another, as probes spend their attempts.
    wait_until(lambda: all(r["status"] == "failed" for r in _deliveries(client)), "all failed", 60)
    back = Receiver(port=port)
    try:
        (ping,) = back.wait_for("/back", 1, timeout=30)[:1]
        event = json.loads(ping.body)
        assert event["type"] == "WebhookPing"
        assert event["data"]["webhookId"] == _webhook(tenant)["id"]
        assert "webhook-signature" in {name.lower() for name in ping.headers}
        wait_until(lambda: _webhook(tenant)["status"] == "active", "active again")
    finally:
        back.close()
