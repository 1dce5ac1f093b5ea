"""What tests share besides fixtures: the operator's and default wallet's keys, onboarding a
tenant through the API, a valid event, and the error shape."""

from __future__ import annotations

import re
import uuid

ADMIN_TOKEN = "test-admin-token-0123456789"
DEFAULT_WALLET_KEY = "default-wallet-test-key-0123"
# A fixed SECRET_ENCRYPTION_KEY (a Fernet key), so every process of a test run opens the same
# sealed values.
TEST_ENCRYPTION_KEY = "dGVzdC1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg5YWI="
SECRET_KEY = "test-console-secret-key-0123456789abcdef"
INSTANCE = re.compile(r"^error:instance:[0-9a-f-]{36}$")


def admin_headers() -> dict[str, str]:
    return {"x-admin-api-key": ADMIN_TOKEN}


class Tenant:
    def __init__(self, client, wallet_id: str, api_key: str):
        self.client = client
        self.wallet_id = wallet_id
        self.api_key = api_key

    @property
    def headers(self) -> dict[str, str]:
        return {"apikey": self.api_key}

    def add_webhook(self, url: str, **fields) -> dict:
        response = self.client.post(
            "/cloud-agent/events/webhooks", json={"url": url, **fields}, headers=self.headers
        )
        assert response.status_code == 200, response.json
        return response.json

    def publish(self, event_type: str, data: dict):
        return self.client.post(
            "/cloud-agent/events", json={"type": event_type, "data": data}, headers=self.headers
        )


def onboard_tenant(client, name: str = "acme") -> Tenant:
    """Wallet → entity → API key, through the admin routes, as an operator would."""
    wallet = client.post("/cloud-agent/wallets", json={"name": name}, headers=admin_headers())
    assert wallet.status_code == 201, wallet.json
    entity = client.post(
        "/cloud-agent/iam/entities",
        json={"name": f"{name}-entity", "walletId": wallet.json["id"]},
        headers=admin_headers(),
    )
    assert entity.status_code == 201, entity.json
    api_key = f"{name}-key-{uuid.uuid4().hex}"
    registered = client.post(
        "/cloud-agent/iam/apikey-authentication",
        json={"entityId": entity.json["id"], "apiKey": api_key},
        headers=admin_headers(),
    )
    assert registered.status_code == 201, registered.data
    return Tenant(client, wallet.json["id"], api_key)


def connection_event(state: str = "InvitationGenerated", **extra) -> dict:
    return {
        "connectionId": str(uuid.uuid4()),
        "label": "Connect with Alice",
        "role": "Inviter",
        "state": state,
        **extra,
    }


def assert_problem(response, status: int, type_: str):
    """The contract's error shape, with this status and type; returns the body."""
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    body = response.json
    assert body["status"] == status
    assert body["type"] == type_
    assert isinstance(body["title"], str) and body["title"]
    assert INSTANCE.match(body["instance"])
    return body
