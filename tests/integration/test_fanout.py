"""An event reaches the wallet's webhooks and the global webhook, through a real worker."""

import json

from standardwebhooks import Webhook as Verifier

from tests.helpers import connection_event, onboard_tenant

GLOBAL_KEY = "global-bearer-key-0123456789"
GLOBAL_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


GLOBAL_WEBHOOK = {"GLOBAL_WEBHOOK_API_KEY": GLOBAL_KEY, "GLOBAL_WEBHOOK_SECRET": GLOBAL_SECRET}


def test_event_reaches_wallet_and_global_webhooks_with_identical_bytes(
    client, tenant, receiver, global_receiver, worker
):
    created = tenant.add_webhook(receiver.url("/hook"), customHeaders={"X-Tenant": "acme"})
    data = connection_event()
    published = tenant.publish("ConnectionUpdated", data)
    assert published.status_code == 202

    wallet_copy = receiver.wait_for("/hook", 1)
    global_copy = global_receiver.wait_for("/global", 1)
    assert len(wallet_copy) == 1 and len(global_copy) == 1
    assert wallet_copy[0].body == global_copy[0].body == published.data

    envelope = json.loads(wallet_copy[0].body)
    assert list(envelope) == ["type", "id", "ts", "data", "walletId"]
    assert envelope["type"] == "ConnectionUpdated"
    assert envelope["data"] == data
    assert envelope["walletId"] == tenant.wallet_id
    assert envelope["ts"].endswith("Z")

    wallet_headers = {k.lower(): v for k, v in wallet_copy[0].headers.items()}
    global_headers = {k.lower(): v for k, v in global_copy[0].headers.items()}
    assert wallet_headers["content-type"] == "application/json"
    assert wallet_headers["user-agent"].startswith("cloud-agent-webhooks/")
    assert wallet_headers["x-tenant"] == "acme"
    assert "authorization" not in wallet_headers
    assert global_headers["authorization"] == f"Bearer {GLOBAL_KEY}"
    assert "x-tenant" not in global_headers
    assert wallet_headers["webhook-id"] == global_headers["webhook-id"] == envelope["id"]

    # Both copies carry Standard Webhooks signatures that the reference library accepts.
    Verifier(created["secret"]).verify(wallet_copy[0].body, wallet_copy[0].headers)
    Verifier(GLOBAL_SECRET).verify(global_copy[0].body, global_copy[0].headers)


def test_another_wallets_webhook_receives_nothing(client, receiver, global_receiver, worker):
    alice = onboard_tenant(client, "alice")
    bob = onboard_tenant(client, "bob")
    alice.add_webhook(receiver.url("/alice"))
    bob.add_webhook(receiver.url("/bob"))
    global_before = len(global_receiver.at("/global"))
    assert alice.publish("ConnectionUpdated", connection_event()).status_code == 202
    assert len(receiver.wait_for("/alice", 1)) == 1
    # The global webhook has seen the event too, so the worker is done with it.
    assert len(global_receiver.wait_for("/global", global_before + 1)) == global_before + 1
    assert receiver.at("/bob") == []
