"""The Identus agent's entity and wallet operations: renaming and moving an entity, creating an
entity without a wallet, wallet seeds, and Identus's statuses and error types for each refusal."""

import hashlib
import time
import uuid

import pytest
from sqlalchemy import select

import app.state
from app import create_app
from shared.models import DEFAULT_WALLET_ID, Wallet
from tests.helpers import admin_headers, assert_problem, onboard_tenant

ADMIN = admin_headers()
SEED = "c9994785ce6d548134020f610b76102ca1075d3bb672a75ec8c9a27a7b8607e3" * 2


def new_wallet(client, **fields) -> dict:
    created = client.post("/cloud-agent/wallets", json={"name": "w", **fields}, headers=ADMIN)
    assert created.status_code == 201, created.json
    return created.json


def new_entity(client, wallet_id: str, **fields) -> dict:
    created = client.post(
        "/cloud-agent/iam/entities",
        json={"name": "e", "walletId": wallet_id, **fields},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.json
    return created.json


def entity_of(client, tenant) -> dict:
    entities = client.get("/cloud-agent/iam/entities", headers=ADMIN).json["contents"]
    return next(e for e in entities if e["walletId"] == tenant.wallet_id)


def webhook_urls(client, headers) -> list[str]:
    listed = client.get("/cloud-agent/events/webhooks", headers=headers)
    assert listed.status_code == 200, listed.json
    return [w["url"] for w in listed.json["contents"]]


def test_an_entity_is_renamed(client):
    entity = new_entity(client, new_wallet(client)["id"])
    renamed = client.put(
        f"/cloud-agent/iam/entities/{entity['id']}/name", json={"name": "Jane"}, headers=ADMIN
    )
    assert renamed.status_code == 200
    body = renamed.json
    assert {**body, "name": "e", "updatedAt": entity["updatedAt"]} == entity
    assert body["name"] == "Jane"
    assert body["updatedAt"] > entity["updatedAt"]
    shown = client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN)
    assert shown.json == body


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 129}, {"name": 7}])
def test_a_bad_name_is_400_and_changes_nothing(client, body):
    entity = new_entity(client, new_wallet(client)["id"])
    response = client.put(
        f"/cloud-agent/iam/entities/{entity['id']}/name", json=body, headers=ADMIN
    )
    assert_problem(response, 400, "BadRequest")
    shown = client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN)
    assert shown.json == entity


def test_renaming_an_unknown_entity_is_404(client):
    missing = uuid.uuid4()
    response = client.put(
        f"/cloud-agent/iam/entities/{missing}/name", json={"name": "x"}, headers=ADMIN
    )
    body = assert_problem(response, 404, "error:EntityServiceError:EntityNotFound")
    assert body["detail"] == f"There is no entity matching the given identifier: id={missing}"


@pytest.mark.parametrize("route", ["name", "walletId"])
def test_only_the_operator_changes_entities(client, route):
    tenant = onboard_tenant(client)
    entity = entity_of(client, tenant)
    body = {"name": "x", "walletId": str(DEFAULT_WALLET_ID)}
    for headers in ({}, tenant.headers, {"x-admin-api-key": "wrong"}):
        response = client.put(
            f"/cloud-agent/iam/entities/{entity['id']}/{route}", json=body, headers=headers
        )
        assert_problem(response, 401, "error:AuthenticationError:InvalidCredentials")
    assert client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN).json == entity


def test_moving_an_entity_moves_what_its_keys_act_on_at_once(client):
    tenant = onboard_tenant(client)
    tenant.add_webhook("http://old.example/hook")
    assert webhook_urls(client, tenant.headers) == ["http://old.example/hook"]  # now cached
    entity = entity_of(client, tenant)
    target = new_wallet(client, name="target")

    moved = client.put(
        f"/cloud-agent/iam/entities/{entity['id']}/walletId",
        json={"walletId": target["id"]},
        headers=ADMIN,
    )
    assert moved.status_code == 200
    assert moved.json["walletId"] == target["id"]
    assert moved.json["id"] == entity["id"] and moved.json["name"] == entity["name"]

    # The same process acts on the new wallet with the next call.
    assert webhook_urls(client, tenant.headers) == []
    tenant.add_webhook("http://new.example/hook")
    assert webhook_urls(client, tenant.headers) == ["http://new.example/hook"]
    shown = client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN).json
    assert shown["walletId"] == target["id"]


def test_another_process_follows_a_move_within_the_key_cache_time(client, settings, monkeypatch):
    monkeypatch.setattr(app.state, "API_KEY_CACHE_SECONDS", 0.5)
    other_app = create_app(settings, dispatch=lambda ids: None)
    other = other_app.test_client()
    try:
        tenant = onboard_tenant(client)
        tenant.add_webhook("http://old.example/hook")
        assert webhook_urls(other, tenant.headers) == ["http://old.example/hook"]  # cached there
        target = new_wallet(client, name="target")
        entity = entity_of(client, tenant)
        moved = client.put(
            f"/cloud-agent/iam/entities/{entity['id']}/walletId",
            json={"walletId": target["id"]},
            headers=ADMIN,
        )
        assert moved.status_code == 200
        time.sleep(0.6)
        assert webhook_urls(other, tenant.headers) == []
    finally:
        other_app.extensions["cloud_agent_webhooks"].db.dispose()


def test_moving_to_an_unknown_wallet_is_404_and_changes_nothing(client):
    tenant = onboard_tenant(client)
    entity = entity_of(client, tenant)
    missing = uuid.uuid4()
    response = client.put(
        f"/cloud-agent/iam/entities/{entity['id']}/walletId",
        json={"walletId": str(missing)},
        headers=ADMIN,
    )
    body = assert_problem(response, 404, "error:EntityServiceError:WalletNotFound")
    assert body["detail"] == f"There is no wallet matching the given identifier: walletId:{missing}"
    assert client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN).json == entity
    assert client.get("/cloud-agent/events/webhooks", headers=tenant.headers).status_code == 200


def test_moving_an_unknown_entity_is_404(client):
    unknown = f"/cloud-agent/iam/entities/{uuid.uuid4()}/walletId"
    to_existing = client.put(unknown, json={"walletId": str(DEFAULT_WALLET_ID)}, headers=ADMIN)
    assert_problem(to_existing, 404, "error:EntityServiceError:EntityNotFound")
    # Identus looks for the wallet first.
    to_missing = client.put(unknown, json={"walletId": str(uuid.uuid4())}, headers=ADMIN)
    assert_problem(to_missing, 404, "error:EntityServiceError:WalletNotFound")


@pytest.mark.parametrize("body", [{}, {"walletId": "nope"}, {"walletId": None}])
def test_a_bad_wallet_id_body_is_400(client, body):
    entity = new_entity(client, str(DEFAULT_WALLET_ID))
    response = client.put(
        f"/cloud-agent/iam/entities/{entity['id']}/walletId", json=body, headers=ADMIN
    )
    assert_problem(response, 400, "BadRequest")


def test_an_entity_without_a_wallet_belongs_to_the_default_wallet(client):
    created = client.post("/cloud-agent/iam/entities", json={"name": "e"}, headers=ADMIN)
    assert created.status_code == 201
    assert created.json["walletId"] == str(DEFAULT_WALLET_ID)


def test_an_entity_id_taken_is_422_and_changes_nothing(client):
    entity = new_entity(client, str(DEFAULT_WALLET_ID))
    again = client.post(
        "/cloud-agent/iam/entities",
        json={"name": "other", "walletId": new_wallet(client)["id"], "id": entity["id"]},
        headers=ADMIN,
    )
    assert_problem(again, 422, "error:EntityServiceError:DuplicatedEntityId")
    assert client.get(f"/cloud-agent/iam/entities/{entity['id']}", headers=ADMIN).json == entity


def test_api_keys_of_an_unknown_entity_are_404(client):
    key = {"entityId": str(uuid.uuid4()), "apiKey": "a-tenant-key-0123456789"}
    for method in (client.post, client.delete):
        response = method("/cloud-agent/iam/apikey-authentication", json=key, headers=ADMIN)
        assert_problem(response, 404, "error:EntityServiceError:EntityNotFound")


def test_a_wallet_takes_a_seed_and_keeps_only_its_digest(client, database):
    created = client.post(
        "/cloud-agent/wallets", json={"name": "seeded", "seed": SEED}, headers=ADMIN
    )
    assert created.status_code == 201
    assert set(created.json) == {"id", "name", "createdAt", "updatedAt"}
    with database.session() as session:
        row = session.execute(
            select(Wallet.__table__).where(Wallet.id == uuid.UUID(created.json["id"]))
        ).one()
    assert SEED not in [str(value) for value in row]
    assert row.seed_digest == hashlib.sha256(bytes.fromhex(SEED)).hexdigest()


def test_a_seed_is_used_by_one_wallet_only(client):
    new_wallet(client, seed=SEED)
    taken_id = new_wallet(client)["id"]
    # The same bytes in capitals are the same seed; Identus checks the seed before the id.
    again = client.post(
        "/cloud-agent/wallets",
        json={"name": "again", "seed": SEED.upper(), "id": taken_id},
        headers=ADMIN,
    )
    body = assert_problem(again, 422, "error:WalletManagementServiceError:DuplicatedWalletSeed")
    assert body["title"] == "Duplicated Wallet Seed"
    assert SEED not in again.get_data(as_text=True).lower()
    # Wallets without a seed do not collide with each other.
    new_wallet(client)
    new_wallet(client, seed=None)


@pytest.mark.parametrize(
    "seed", ["", "abc", SEED[:-2], SEED + "00", SEED[:-1] + "g", " " + SEED[1:], 7]
)
def test_a_seed_that_is_not_64_bytes_of_hex_is_400(client, seed):
    response = client.post("/cloud-agent/wallets", json={"name": "w", "seed": seed}, headers=ADMIN)
    body = assert_problem(response, 400, "BadRequest")
    if isinstance(seed, str):
        assert body["detail"].startswith(
            "The provided wallet seed is not valid hex string representing a BIP-32 seed."
        )
    names = [w["name"] for w in client.get("/cloud-agent/wallets", headers=ADMIN).json["contents"]]
    assert names == ["default"]
