"""Onboarding tenants through the admin routes, and the default wallet."""

import uuid

import pytest
from sqlalchemy import select

from app import create_app
from shared.models import DEFAULT_WALLET_ID, Webhook
from shared.secret_box import box_for
from shared.settings import load_settings
from tests.helpers import (
    ADMIN_TOKEN,
    DEFAULT_WALLET_KEY,
    admin_headers,
    assert_problem,
    onboard_tenant,
)
from tools.migrate import prepare_database

ADMIN = admin_headers()


def test_admin_routes_need_the_admin_key(client):
    for headers in ({}, {"x-admin-api-key": ""}, {"x-admin-api-key": "wrong"}):
        response = client.get("/cloud-agent/wallets", headers=headers)
        assert_problem(response, 401, "error:AuthenticationError:InvalidCredentials")
    # A tenant key is not an admin key.
    tenant = onboard_tenant(client)
    response = client.get("/cloud-agent/wallets", headers=tenant.headers)
    assert_problem(response, 401, "error:AuthenticationError:InvalidCredentials")


def test_without_admin_token_admin_routes_answer_401(base_env):
    env = {**base_env, "ADMIN_TOKEN": ""}
    client = create_app(load_settings(env), dispatch=lambda ids: None).test_client()
    response = client.get("/cloud-agent/wallets", headers={"x-admin-api-key": ADMIN_TOKEN})
    assert_problem(response, 401, "error:AuthenticationError:InvalidCredentials")


def test_wallet_create_show_and_list(client):
    wallet_id = str(uuid.uuid4())
    created = client.post(
        "/cloud-agent/wallets", json={"name": "acme", "id": wallet_id}, headers=ADMIN
    )
    assert created.status_code == 201
    assert created.json["id"] == wallet_id
    assert set(created.json) == {"id", "name", "createdAt", "updatedAt"}
    shown = client.get(f"/cloud-agent/wallets/{wallet_id}", headers=ADMIN)
    assert shown.json == created.json
    listed = client.get("/cloud-agent/wallets?offset=0&limit=1", headers=ADMIN).json
    assert listed["kind"] == "WalletPage"
    assert listed["contents"][0]["id"] == str(DEFAULT_WALLET_ID)  # the oldest comes first
    assert listed["next"] == "/wallets?offset=1&limit=1"
    duplicate = client.post(
        "/cloud-agent/wallets", json={"name": "again", "id": wallet_id}, headers=ADMIN
    )
    assert_problem(duplicate, 422, "error:WalletManagementServiceError:DuplicatedWalletId")
    missing = client.get(f"/cloud-agent/wallets/{uuid.uuid4()}", headers=ADMIN)
    assert_problem(missing, 404, "NotFound")


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 129}, {"name": "a", "id": "1"}])
def test_bad_wallet_bodies_are_400(client, body):
    assert client.post("/cloud-agent/wallets", json=body, headers=ADMIN).status_code == 400


def test_entities_and_api_keys(client):
    wallet = client.post("/cloud-agent/wallets", json={"name": "w"}, headers=ADMIN).json
    entity = client.post(
        "/cloud-agent/iam/entities", json={"name": "e", "walletId": wallet["id"]}, headers=ADMIN
    )
    assert entity.status_code == 201
    body = entity.json
    assert body["kind"] == "Entity"
    assert body["self"] == f"/iam/entities/{body['id']}"
    assert body["walletId"] == wallet["id"]
    assert client.get(f"/cloud-agent/iam/entities/{body['id']}", headers=ADMIN).json == body
    assert body["id"] in [
        e["id"] for e in client.get("/cloud-agent/iam/entities", headers=ADMIN).json["contents"]
    ]

    key = {"entityId": body["id"], "apiKey": "a-tenant-key-0123456789"}
    registered = client.post("/cloud-agent/iam/apikey-authentication", json=key, headers=ADMIN)
    assert registered.status_code == 201 and registered.data == b""
    tenant_headers = {"apikey": key["apiKey"]}
    assert client.get("/cloud-agent/events/webhooks", headers=tenant_headers).status_code == 200

    short = {**key, "apiKey": "too-short"}
    assert (
        client.post("/cloud-agent/iam/apikey-authentication", json=short, headers=ADMIN)
    ).status_code == 400

    removed = client.delete("/cloud-agent/iam/apikey-authentication", json=key, headers=ADMIN)
    assert removed.status_code == 200
    assert client.get("/cloud-agent/events/webhooks", headers=tenant_headers).status_code == 401
    again = client.delete("/cloud-agent/iam/apikey-authentication", json=key, headers=ADMIN)
    assert_problem(again, 404, "NotFound")

    # Deleting the entity removes its keys with it.
    client.post("/cloud-agent/iam/apikey-authentication", json=key, headers=ADMIN)
    deleted = client.delete(f"/cloud-agent/iam/entities/{body['id']}", headers=ADMIN)
    assert deleted.status_code == 200
    assert client.get("/cloud-agent/events/webhooks", headers=tenant_headers).status_code == 401
    gone = client.get(f"/cloud-agent/iam/entities/{body['id']}", headers=ADMIN)
    assert_problem(gone, 404, "error:EntityServiceError:EntityNotFound")


def test_an_entity_needs_an_existing_wallet(client):
    response = client.post(
        "/cloud-agent/iam/entities",
        json={"name": "e", "walletId": str(uuid.uuid4())},
        headers=ADMIN,
    )
    assert_problem(response, 404, "error:EntityServiceError:WalletNotFound")


def test_a_key_of_another_entity_cannot_be_taken_over(client):
    first = onboard_tenant(client, "first")
    second_wallet = client.post("/cloud-agent/wallets", json={"name": "s"}, headers=ADMIN).json
    second = client.post(
        "/cloud-agent/iam/entities",
        json={"name": "s", "walletId": second_wallet["id"]},
        headers=ADMIN,
    ).json
    response = client.post(
        "/cloud-agent/iam/apikey-authentication",
        json={"entityId": second["id"], "apiKey": first.api_key},
        headers=ADMIN,
    )
    assert_problem(response, 401, "error:AuthenticationRepositoryError:AuthenticationCompromised")
    # The key still maps to the first tenant's wallet.
    first.add_webhook("http://first.example/hook")
    listed = client.get("/cloud-agent/events/webhooks", headers=first.headers).json["contents"]
    assert [w["url"] for w in listed] == ["http://first.example/hook"]


def test_api_keys_are_stored_only_as_salted_hashes(client, database):
    tenant = onboard_tenant(client)
    from sqlalchemy import text

    with database.session() as session:
        stored = session.execute(text("SELECT key_hash FROM api_keys")).scalars().all()
    assert tenant.api_key not in stored
    assert all(len(value) == 64 for value in stored)


def test_the_default_wallet_answers_to_its_key(client):
    headers = {"apikey": DEFAULT_WALLET_KEY}
    created = client.post(
        "/cloud-agent/events/webhooks", json={"url": "http://localhost:9095"}, headers=headers
    )
    assert created.status_code == 200
    wallet = client.get(f"/cloud-agent/wallets/{DEFAULT_WALLET_ID}", headers=ADMIN).json
    assert wallet["name"] == "default"


def test_default_wallet_is_created_once_with_its_webhook(base_env, database):
    from sqlalchemy import text

    with database.engine.begin() as connection:
        for table in ("webhooks", "api_keys", "entities", "wallets"):
            connection.execute(text(f"DELETE FROM {table}"))
    first = {
        **base_env,
        "DEFAULT_WALLET_WEBHOOK_URL": "http://first.example/hook",
        "DEFAULT_WALLET_WEBHOOK_API_KEY": "first-bearer",
    }
    prepare_database(load_settings(first))
    # A restart with other values changes nothing: the webhook lives in the database now.
    later = {
        **base_env,
        "DEFAULT_WALLET_AUTH_API_KEY": "another-default-key-0123",
        "DEFAULT_WALLET_WEBHOOK_URL": "http://second.example/hook",
        "DEFAULT_WALLET_WEBHOOK_API_KEY": "second-bearer",
    }
    prepare_database(load_settings(later))
    client = create_app(load_settings(later), dispatch=lambda ids: None).test_client()
    listed = client.get("/cloud-agent/events/webhooks", headers={"apikey": DEFAULT_WALLET_KEY})
    assert listed.status_code == 200
    hooks = listed.json["contents"]
    assert [(h["url"], h["customHeaders"]) for h in hooks] == [
        ("http://first.example/hook", {"Authorization": "••••••"})
    ]
    # The value answers hide is the first start's, sealed (the operator's key opens it).
    with database.session() as session:
        stored = session.scalar(select(Webhook.custom_headers).where(Webhook.url.like("%first%")))
    assert stored["Authorization"].startswith("sealed:")
    assert box_for(load_settings(later)).open(stored["Authorization"]) == "Bearer first-bearer"
    refused = client.get(
        "/cloud-agent/events/webhooks", headers={"apikey": "another-default-key-0123"}
    )
    assert refused.status_code == 401


def test_a_generated_default_key_is_printed_once(base_env, database, capsys):
    from sqlalchemy import text

    with database.engine.begin() as connection:
        for table in ("webhooks", "api_keys", "entities", "wallets"):
            connection.execute(text(f"DELETE FROM {table}"))
    env = {**base_env, "DEFAULT_WALLET_AUTH_API_KEY": ""}
    prepare_database(load_settings(env))
    printed = capsys.readouterr().out
    assert "API key" in printed
    key = printed.strip().rsplit(" ", 1)[-1]
    client = create_app(load_settings(env), dispatch=lambda ids: None).test_client()
    assert client.get("/cloud-agent/events/webhooks", headers={"apikey": key}).status_code == 200
    prepare_database(load_settings(env))
    assert capsys.readouterr().out == ""


def test_api_keys_disabled_means_every_call_acts_on_the_default_wallet(base_env):
    client = create_app(
        load_settings({**base_env, "API_KEY_ENABLED": "false"}), dispatch=lambda ids: None
    ).test_client()
    created = client.post("/cloud-agent/events/webhooks", json={"url": "http://localhost:9095"})
    assert created.status_code == 200
    listed = client.get("/cloud-agent/events/webhooks", headers={"apikey": DEFAULT_WALLET_KEY})
    assert [h["id"] for h in listed.json["contents"]] == [created.json["id"]]
