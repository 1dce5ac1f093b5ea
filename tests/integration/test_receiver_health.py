"""Receivers that misbehave in ordinary ways, against a real worker and beat: a hanging path
beside a healthy one on the same host, a trickling answer, a receiver down for a while, a
Retry-After, and the circuit that keeps a failing webhook's deliveries waiting."""

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.deliveries import DELIVERIES, wait_until
from tests.helpers import admin_headers, connection_event, onboard_tenant
from tests.receiver import Receiver

TIMEOUT = 2.0
SERVICE_ENV = {
    "WEBHOOK_TIMEOUT": str(TIMEOUT),
    "WEBHOOK_RETRY_COUNTDOWN": "0.5",
    "WEBHOOK_CIRCUIT_FAILURES": "3",
    "WEBHOOK_PROBE_INTERVAL": "1",
    "WEBHOOK_PROBE_MAX_INTERVAL": "2",
    "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK": "2",
    "WEBHOOK_MAX_IN_FLIGHT_SLOW": "4",
}
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _running(worker, beat):
    """A real worker (16 threads) and beat (sweeping every 0.5 s)."""


def _deliveries(client, **query) -> list[dict]:
    response = client.get(
        DELIVERIES, query_string={"limit": 1000, **query}, headers=admin_headers()
    )
    assert response.status_code == 200, response.json
    return response.json["contents"]


def _webhook(tenant) -> dict:
    (webhook,) = tenant.client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json[
        "contents"
    ]
    return webhook


def test_a_hanging_path_does_not_delay_another_tenant_on_the_same_host(client, receiver):
    receiver.behave("/stuck", delay=60)
    stuck = onboard_tenant(client, "stuck")
    healthy = onboard_tenant(client, "healthy")
    stuck.add_webhook(receiver.url("/stuck"))
    healthy.add_webhook(receiver.url("/ok"))
    for _ in range(12):
        assert stuck.publish("ConnectionUpdated", connection_event()).status_code == 202
    receiver.wait_for("/stuck", 2, timeout=10)
    delays = []
    for _ in range(5):
        published = time.time()
        assert healthy.publish("ConnectionUpdated", connection_event()).status_code == 202
        arrived = receiver.wait_for("/ok", len(delays) + 1, timeout=10)[-1]
        delays.append(arrived.at - published)
    assert max(delays) < 1.0, delays


def test_many_hanging_hosts_hold_a_bounded_share_of_the_threads(client, receiver):
    # A healthy webhook that has already shown itself fast.
    healthy = onboard_tenant(client, "many-healthy")
    healthy.add_webhook(receiver.url("/fine"))
    assert healthy.publish("ConnectionUpdated", connection_event()).status_code == 202
    receiver.wait_for("/fine", 1, timeout=10)
    # Six hosts that accept connections and never answer (a listening socket nobody serves).
    hanging = [socket.create_server(("127.0.0.1", 0), backlog=64) for _ in range(6)]
    try:
        stuck = onboard_tenant(client, "many-stuck")
        for server in hanging:
            stuck.add_webhook(f"http://127.0.0.1:{server.getsockname()[1]}/never")
        for _ in range(16):  # 96 deliveries: far more than the worker's 16 threads
            assert stuck.publish("ConnectionUpdated", connection_event()).status_code == 202
        time.sleep(1.0)  # the hanging attempts have taken what they may
        delays = []
        for count in (2, 3, 4):
            published = time.time()
            assert healthy.publish("ConnectionUpdated", connection_event()).status_code == 202
            arrived = receiver.wait_for("/fine", count, timeout=10)[-1]
            delays.append(arrived.at - published)
        assert max(delays) < 1.0, delays
    finally:
        for server in hanging:
            server.close()


def test_a_trickling_receiver_is_cut_off_at_the_deadline(client, tenant, receiver):
    receiver.behave("/slowly", trickle=0.2)
    tenant.add_webhook(receiver.url("/slowly"))
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    receiver.wait_for("/slowly", 1, timeout=10)

    def first_attempt():
        (row,) = _deliveries(client)
        detail = client.get(f"{DELIVERIES}/{row['id']}", headers=admin_headers()).json
        return detail["attemptLog"][:1]

    (attempt,) = wait_until(first_attempt, "the first attempt to be recorded", timeout=20)
    assert attempt["error"].startswith("timeout")
    assert abs(attempt["durationMs"] / 1000 - TIMEOUT) <= 0.5


def test_retry_after_holds_the_next_attempt(client, tenant, receiver):
    receiver.behave("/busy", statuses=[503], headers={"Retry-After": "3"})
    tenant.add_webhook(receiver.url("/busy"))
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    first, second = receiver.wait_for("/busy", 2, timeout=20)
    assert second.at - first.at >= 3.0 - 0.1


def test_retry_after_as_an_http_date_is_capped(client, receiver):
    # The cap is the settings' default here (300 s); a date 3 s ahead holds about 3 s.
    tenant = onboard_tenant(client, "dated")
    when = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.behave("/dated", statuses=[429], headers={"Retry-After": when})
    tenant.add_webhook(receiver.url("/dated"))
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    first, second = receiver.wait_for("/dated", 2, timeout=20)
    assert second.at - first.at >= 1.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_receiver_down_for_a_while_gets_everything_once_it_is_back(client, tenant):
    port = _free_port()
    tenant.add_webhook(f"http://127.0.0.1:{port}/back")
    events = [tenant.publish("ConnectionUpdated", connection_event()).json["id"] for _ in range(10)]

    # Connections are refused: after 3 failed attempts the circuit opens, and the deliveries
    # wait without spending their attempts.
    def failing():
        webhook = _webhook(tenant)
        return webhook["status"] == "failing" and webhook

    webhook = wait_until(failing, "the webhook to be failing", timeout=30)
    assert "statusSince" in webhook
    wait_until(
        lambda: any(row["status"] == "waiting" for row in _deliveries(client)),
        "deliveries waiting",
    )
    time.sleep(4)  # a few probes fail meanwhile
    back = Receiver(port=port)
    try:
        arrived = back.wait_for("/back", 10, timeout=40)
        ids = sorted({r.headers["webhook-id"] for r in arrived})
        assert ids == sorted(events)
        rows = wait_until(
            lambda: (
                (rows := _deliveries(client))
                and all(row["status"] == "delivered" for row in rows)
                and rows
            ),
            "every delivery delivered",
        )
        assert all(row["attempts"] <= 3 for row in rows)
        assert len(arrived) == 10  # none twice
        healed = _webhook(tenant)
        assert healed["status"] == "active" and "lastSuccessAt" in healed
    finally:
        back.close()


def test_a_failing_probe_spends_exactly_one_attempt(client, tenant, receiver):
    receiver.behave("/down", then=500)
    tenant.add_webhook(receiver.url("/down"))
    for _ in range(4):
        tenant.publish("ConnectionUpdated", connection_event())
    wait_until(lambda: _webhook(tenant)["status"] == "failing", "the circuit to open")
    before = len(receiver.at("/down"))
    time.sleep(3.5)  # probes after 1 s, then 2 s
    probes = len(receiver.at("/down")) - before
    assert 1 <= probes <= 3
    attempts = sum(row["attempts"] for row in _deliveries(client))
    assert attempts == len(receiver.at("/down"))


def test_enable_and_recover_are_the_tenants_own(client, tenant, receiver):
    receiver.behave("/fails", then=500)
    webhook = tenant.add_webhook(receiver.url("/fails"))
    other = onboard_tenant(client, "other")
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    for path, body in (("enable", None), ("recover", {"since": since})):
        url = f"/cloud-agent/events/webhooks/{webhook['id']}/{path}"
        assert client.post(url, json=body, headers=other.headers).status_code == 404
        assert client.post(url, json=body, headers=tenant.headers).status_code in (200, 202)
        assert client.post(url, json=body, headers=admin_headers()).status_code in (200, 202)


def test_recover_sends_failed_deliveries_again(client, tenant, receiver):
    receiver.behave("/later", statuses=[500, 500, 500])
    webhook = tenant.add_webhook(receiver.url("/later"))
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    event = tenant.publish("ConnectionUpdated", connection_event()).json["id"]
    wait_until(
        lambda: [row for row in _deliveries(client) if row["status"] == "failed"],
        "the delivery to fail",
    )
    recovered = client.post(
        f"/cloud-agent/events/webhooks/{webhook['id']}/recover",
        json={"since": since},
        headers=tenant.headers,
    )
    assert recovered.status_code == 202 and recovered.json == {"redelivered": 1}
    (fourth,) = receiver.wait_for("/later", 4, timeout=20)[3:]
    assert fourth.headers["webhook-id"] == event
