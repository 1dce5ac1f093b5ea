"""WEBHOOK_BLOCK_PRIVATE_NETWORKS: checked on the address actually connected to."""

import time
import uuid

import pytest

from shared.attempt_rules import TokenGrant
from shared.sender import Sender
from shared.services.webhooks import WebhookRequest, create_webhook
from shared.settings import load_settings
from tests.helpers import admin_headers, connection_event
from tests.token_server import CLIENT_ID, CLIENT_SECRET, TokenServer

SERVICE_ENV = {"WEBHOOK_BLOCK_PRIVATE_NETWORKS": "true", "WEBHOOK_TIMEOUT": "1"}
BODY = b'{"type":"x"}'
HEADERS = {"Content-Type": "application/json"}


def sender(**env) -> Sender:
    return Sender(load_settings(env))


def test_a_blocked_delivery_is_recorded_with_a_clear_error(
    client, tenant, receiver, worker, database, base_env
):
    # A webhook stored before the guard was switched on (registration now refuses it): every
    # attempt is refused when connecting, before a byte is sent.
    with database.transaction() as session:
        url = f"http://localhost:{receiver.port}/blocked"
        unguarded = load_settings(base_env)
        create_webhook(session, unguarded, uuid.UUID(tenant.wallet_id), WebhookRequest(url))
    event = tenant.publish("ConnectionUpdated", connection_event()).json
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = client.get(
            f"/cloud-agent/events/deliveries?eventId={event['id']}", headers=admin_headers()
        ).json
        if page["contents"] and page["contents"][0]["status"] == "failed":
            break
        time.sleep(0.2)
    delivery = page["contents"][0]
    assert delivery["status"] == "failed"
    assert delivery["lastError"] == "refused by the network guard"  # no address for the tenant
    assert receiver.at("/blocked") == []
    worker.wait_for_log("network guard refused a delivery: localhost resolves to 127.0.0.1")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.1", "192.168.1.1", "[::1]"]
)
def test_private_and_metadata_addresses_are_refused(host):
    result = sender(WEBHOOK_BLOCK_PRIVATE_NETWORKS="true").post(f"http://{host}:9/x", BODY, HEADERS)
    assert result.status_code is None
    assert "network guard" in result.error


def test_allowed_networks_are_exceptions(receiver):
    allowed = sender(WEBHOOK_BLOCK_PRIVATE_NETWORKS="true", WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    assert allowed.post(receiver.url("/allowed"), BODY, HEADERS).status_code == 200
    assert len(receiver.at("/allowed")) == 1


def test_the_guard_is_off_by_default(receiver):
    assert sender().post(receiver.url("/open"), BODY, HEADERS).status_code == 200


def test_https_only_refuses_plain_http(receiver):
    result = sender(WEBHOOK_HTTPS_ONLY="true").post(receiver.url("/plain"), BODY, HEADERS)
    assert result.status_code is None
    assert "WEBHOOK_HTTPS_ONLY" in result.error
    assert receiver.at("/plain") == []


def test_the_token_endpoint_passes_the_guard_too(receiver):
    # The receiver's address is allowed; the token endpoint, on another loopback address, is not.
    tokens = TokenServer(host="127.0.0.2")
    try:
        guarded = sender(
            WEBHOOK_BLOCK_PRIVATE_NETWORKS="true", WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32"
        )
        grant = TokenGrant(tokens.url, CLIENT_ID, CLIENT_SECRET)
        result = guarded.post(receiver.url("/guarded-token"), BODY, HEADERS, grant=grant)
    finally:
        tokens.close()
    assert result.status_code is None
    # The tenant is not told where the name resolves (the operator's log says it).
    assert result.error == "oauth2: token endpoint: refused by the network guard"
    assert tokens.count == 0
    assert receiver.at("/guarded-token") == []


def test_registration_refuses_a_token_endpoint_the_guard_would_refuse(client, tenant, receiver):
    auth = {
        "type": "oauth2",
        "tokenUrl": "http://169.254.169.254/token",
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
    }
    refused = client.post(
        "/cloud-agent/events/webhooks",
        json={"url": "https://example.com/hook", "auth": auth},
        headers=tenant.headers,
    )
    assert refused.status_code == 400
    assert refused.json["detail"].startswith("auth.tokenUrl: refused by the network guard")
