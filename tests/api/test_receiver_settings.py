"""A webhook's auth, tls and signature scheme through the API: what is refused, what answers
show (never a password, client secret, key or custom header value), changing them with
PATCH, and what a database row holds (no secret in clear)."""

import json

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from tests.deliveries import deliveries_of
from tests.helpers import assert_problem, connection_event, onboard_tenant

WEBHOOKS = "/cloud-agent/events/webhooks"
PASSWORD = "basic-password-0123"
CLIENT_SECRET = "oauth-client-secret-0123"
HEADER_VALUE = "Bearer custom-header-secret-0123"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def pair(ca):
    issued = ca.issue_cert("client.example")
    return issued.cert_chain_pems[0].bytes().decode(), issued.private_key_pem.bytes().decode()


def register(client, tenant, **fields):
    return client.post(WEBHOOKS, json=fields, headers=tenant.headers)


def basic() -> dict:
    return {"type": "basic", "username": "acme", "password": PASSWORD}


def oauth2() -> dict:
    return {
        "type": "oauth2",
        "tokenUrl": "https://auth.example.com/oauth/token",
        "clientId": "acme-webhooks",
        "clientSecret": CLIENT_SECRET,
        "scope": "events:write",
    }


def test_answers_and_lists_show_the_type_and_non_secret_fields_only(client, tenant, pair, ca):
    certificate, key = pair
    tls = {
        "clientCertificate": certificate,
        "clientKey": key,
        "caCertificate": ca.cert_pem.bytes().decode(),
    }
    created = register(
        client, tenant, url="https://receiver.example/hook", auth=oauth2(), tls=tls,
        customHeaders={"X-Api-Key": HEADER_VALUE},
    )  # fmt: skip
    assert created.status_code == 200, created.json
    listed = client.get(WEBHOOKS, headers=tenant.headers).json["contents"][0]
    for shown in (created.json, listed):
        assert shown["auth"] == {
            "type": "oauth2",
            "tokenUrl": "https://auth.example.com/oauth/token",
            "clientId": "acme-webhooks",
            "scope": "events:write",
            "clientAuthentication": "client_secret_basic",
        }
        assert shown["tls"]["clientCertificate"] == certificate
        assert shown["tls"]["caCertificate"] == ca.cert_pem.bytes().decode()
        assert shown["tls"]["clientCertificateExpiresAt"].endswith("Z")
        assert shown["customHeaders"] == {"X-Api-Key": "••••••"}
        answer = json.dumps(shown)
        for secret in (CLIENT_SECRET, HEADER_VALUE, "PRIVATE KEY"):
            assert secret not in answer
    assert created.json["secret"].startswith("whsec_")
    assert "secret" not in listed


def test_basic_auth_shows_its_user_name(client, tenant):
    created = register(client, tenant, url="http://localhost:9095", auth=basic())
    assert created.status_code == 200, created.json
    assert created.json["auth"] == {"type": "basic", "username": "acme"}


@pytest.mark.parametrize(
    "auth, detail",
    [
        ({"type": "digest"}, "auth.type: must be one of basic, oauth2"),
        ({"username": "acme"}, "auth.type"),
        ({"type": "basic", "username": "ac:me", "password": "p"}, "auth.username"),
        ({"type": "basic", "username": "acme"}, "auth.password: required"),
        ({**oauth2(), "tokenUrl": "ftp://x"}, "auth.tokenUrl"),
        ({**oauth2(), "clientSecret": ""}, "auth.clientSecret: required"),
        ({**oauth2(), "clientAuthentication": "private_key_jwt"}, "auth.clientAuthentication"),
    ],
)
def test_bad_auth_is_refused_with_400(client, tenant, auth, detail):
    refused = register(client, tenant, url="http://localhost:9095", auth=auth)
    body = assert_problem(refused, 400, "BadRequest")
    assert body["detail"].startswith(detail), body["detail"]
    assert PASSWORD not in body["detail"] and CLIENT_SECRET not in body["detail"]


def test_auth_beside_an_authorization_header_is_refused(client, tenant):
    refused = register(
        client, tenant, url="http://localhost:9095", auth=basic(),
        customHeaders={"authorization": "Bearer x"},
    )  # fmt: skip
    assert "Authorization custom header" in assert_problem(refused, 400, "BadRequest")["detail"]


def test_bad_tls_is_refused_with_400(client, tenant, pair, ca):
    certificate, key = pair
    other_key = trustme.CA().issue_cert("x.example").private_key_pem.bytes().decode()
    encrypted = serialization.load_pem_private_key(key.encode(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    bad_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    bad_ca = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    cases = [
        ({"clientCertificate": "not a PEM", "clientKey": key}, "tls.clientCertificate: not a"),
        ({"clientCertificate": certificate, "clientKey": bad_key}, "tls.clientKey: not a PEM"),
        ({"clientCertificate": certificate, "clientKey": other_key}, "tls.clientKey: does not"),
        (
            {"clientCertificate": certificate, "clientKey": encrypted.decode()},
            "tls.clientKey: encr",
        ),
        ({"clientCertificate": certificate}, "tls.clientKey: required"),
        ({"caCertificate": bad_ca}, "tls.caCertificate: not a PEM"),
        ({"clientKey": key}, "tls.clientCertificate: required"),
    ]
    for tls, detail in cases:
        refused = register(client, tenant, url="https://receiver.example/hook", tls=tls)
        body = assert_problem(refused, 400, "BadRequest")
        assert body["detail"].startswith(detail), (detail, body["detail"])
        assert "PRIVATE KEY" not in body["detail"]
    ca_only = {"caCertificate": ca.cert_pem.bytes().decode()}
    on_http = register(client, tenant, url="http://receiver.example/hook", tls=ca_only)
    body = assert_problem(on_http, 400, "BadRequest")
    assert body["detail"] == "tls: the webhook's url must be https"


def test_an_unknown_signature_scheme_is_refused(client, tenant):
    refused = register(client, tenant, url="http://localhost:9095", signatureScheme="v2")
    assert_problem(refused, 400, "BadRequest")


def test_patch_changes_what_it_names_and_keeps_the_rest(client, tenant, pair):
    certificate, key = pair
    created = register(
        client, tenant, url="https://receiver.example/hook", eventTypes=["ConnectionUpdated"],
        customHeaders={"X-Api-Key": HEADER_VALUE, "X-Tenant": "acme"},
        tls={"clientCertificate": certificate, "clientKey": key},
    ).json  # fmt: skip
    path = f"{WEBHOOKS}/{created['id']}"
    changed = client.patch(
        path,
        json={"auth": basic(), "customHeaders": {"X-Api-Key": "••••••", "X-Other": "new"}},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["auth"] == {"type": "basic", "username": "acme"}
    assert changed.json["customHeaders"] == {"X-Api-Key": "••••••", "X-Other": "••••••"}
    assert changed.json["eventTypes"] == ["ConnectionUpdated"]  # not named: kept
    assert changed.json["tls"]["clientCertificate"] == certificate
    moved = client.patch(
        path, json={"url": "https://elsewhere.example/hook", "auth": None, "eventTypes": None},
        headers=tenant.headers,
    )  # fmt: skip
    assert moved.status_code == 200, moved.json
    assert moved.json["url"] == "https://elsewhere.example/hook"
    assert "auth" not in moved.json and "eventTypes" not in moved.json
    # A plain-http url cannot keep the webhook's TLS material.
    refused = client.patch(path, json={"url": "http://plain.example/"}, headers=tenant.headers)
    assert_problem(refused, 400, "BadRequest")
    removed = client.patch(path, json={"tls": None}, headers=tenant.headers)
    assert "tls" not in removed.json


def test_patch_of_another_wallets_webhook_is_404(client, tenant):
    other = onboard_tenant(client, "other")
    created = other.add_webhook("http://localhost:9095")
    refused = client.patch(
        f"{WEBHOOKS}/{created['id']}", json={"url": "http://x.example"}, headers=tenant.headers
    )
    assert_problem(refused, 404, "NotFound")


def test_a_database_row_holds_no_secret_in_clear(client, tenant, database, pair):
    certificate, key = pair
    v1 = register(
        client, tenant, url="https://receiver.example/v1", auth=basic(),
        customHeaders={"X-Api-Key": HEADER_VALUE},
        tls={"clientCertificate": certificate, "clientKey": key},
    ).json  # fmt: skip
    v1a = register(
        client, tenant, url="https://receiver.example/v1a", auth=oauth2(), signatureScheme="v1a"
    ).json
    rotated = client.post(f"{WEBHOOKS}/{v1['id']}/rotate-secret", headers=tenant.headers).json
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM webhooks WHERE wallet_id IS NOT NULL"))
        dump = " ".join(str(value) for row in rows for value in row)
    for secret in (PASSWORD, CLIENT_SECRET, HEADER_VALUE, v1["secret"], rotated["secret"]):
        assert secret not in dump
    assert "PRIVATE KEY" not in dump
    for line in _base64_lines(key):  # of the key as given and as the TLS stack loads it
        assert line not in dump
    assert "whsec_" not in dump and "whsk_" not in dump
    assert v1a["publicKey"] in dump  # public keys and certificates are not secrets
    assert dump.count("sealed:") >= 7


def _base64_lines(key_pem: str) -> list[str]:
    pkcs8 = serialization.load_pem_private_key(key_pem.encode(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return [
        line
        for pem in (key_pem, pkcs8.decode())
        for line in pem.splitlines()
        if line and not line.startswith("-----")
    ]


def test_unfinished_deliveries_follow_a_new_url(client, tenant):
    # No worker runs here: the delivery stays pending.
    created = tenant.add_webhook("http://old.example/hook")
    published = tenant.publish("ConnectionUpdated", connection_event()).json
    moved = client.patch(
        f"{WEBHOOKS}/{created['id']}",
        json={"url": "http://new.example/hook"},
        headers=tenant.headers,
    )
    assert moved.status_code == 200
    (delivery,) = deliveries_of(client, tenant.headers, published["id"])
    assert delivery["status"] == "pending" and delivery["url"] == "http://new.example/hook"
