"""POST/GET/DELETE /events/webhooks as an Identus client uses them."""

import re

import pytest

from tests.helpers import assert_problem, onboard_tenant

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
WEBHOOKS = "/cloud-agent/events/webhooks"


def test_register_answers_200_with_the_identus_shape(client, tenant):
    response = client.post(WEBHOOKS, json={"url": "http://localhost:9095"}, headers=tenant.headers)
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"id", "url", "customHeaders", "createdAt", "secret"}
    assert body["url"] == "http://localhost:9095"
    assert body["customHeaders"] == {}
    assert TIMESTAMP.match(body["createdAt"])
    assert body["secret"].startswith("whsec_")


def test_list_is_the_identus_page_object_without_secrets(client, tenant):
    first = tenant.add_webhook("http://localhost:9095", customHeaders={"X-Api-Key": "k1"})
    second = tenant.add_webhook("https://example.com/hook", eventTypes=["ConnectionUpdated"])
    listed = client.get(WEBHOOKS, headers=tenant.headers)
    assert listed.status_code == 200
    page = listed.json
    assert page["kind"] == "WebhookNotificationPage"
    assert page["self"] == "/events/webhooks"
    assert page["pageOf"] == "/events/webhooks"
    assert [w["id"] for w in page["contents"]] == [first["id"], second["id"]]
    # The header's name is shown, never its value.
    assert page["contents"][0]["customHeaders"] == {"X-Api-Key": "••••••"}
    assert page["contents"][1]["eventTypes"] == ["ConnectionUpdated"]
    assert "eventTypes" not in page["contents"][0]
    assert all("secret" not in w for w in page["contents"])


def test_delete_answers_200_with_an_empty_body_then_404(client, tenant):
    created = tenant.add_webhook("http://localhost:9095")
    deleted = client.delete(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.data == b""
    assert client.get(WEBHOOKS, headers=tenant.headers).json["contents"] == []
    again = client.delete(f"{WEBHOOKS}/{created['id']}", headers=tenant.headers)
    assert_problem(again, 404, "NotFound")


def test_tenants_never_see_or_delete_each_others_webhooks(client):
    alice = onboard_tenant(client, "alice")
    bob = onboard_tenant(client, "bob")
    alices = alice.add_webhook("http://alice.example/hook")
    bobs = bob.add_webhook("http://bob.example/hook")

    assert [w["id"] for w in client.get(WEBHOOKS, headers=bob.headers).json["contents"]] == [
        bobs["id"]
    ]
    # Another wallet's id answers exactly as an id that does not exist.
    foreign = client.delete(f"{WEBHOOKS}/{alices['id']}", headers=bob.headers)
    missing = client.delete(f"{WEBHOOKS}/00000000-0000-4000-8000-000000000001", headers=bob.headers)
    assert_problem(foreign, 404, "NotFound")
    assert_problem(missing, 404, "NotFound")
    assert foreign.json["title"] == missing.json["title"]
    listed = client.get(WEBHOOKS, headers=alice.headers).json["contents"]
    assert [w["id"] for w in listed] == [alices["id"]]


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http://",
        "/relative/path",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com/" + "a" * 2048,
    ],
)
def test_bad_urls_are_refused_with_400(client, tenant, url):
    response = client.post(WEBHOOKS, json={"url": url}, headers=tenant.headers)
    assert_problem(response, 400, "BadRequest")
    assert client.get(WEBHOOKS, headers=tenant.headers).json["contents"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"content-length": "1"},
        {"Content-Type": "text/plain"},
        {"Transfer-Encoding": "chunked"},
        {"CONNECTION": "close"},
        {"Webhook-Signature": "v1,forged"},
        {"bad header": "x"},
        {"X-Ok": "line\r\nInjected: yes"},
        {"X-Long": "a" * 1025},
        {f"X-H{i}": "v" for i in range(21)},
        {"X-Number": 5},
    ],
)
def test_bad_custom_headers_are_refused_with_400(client, tenant, headers):
    response = client.post(
        WEBHOOKS,
        json={"url": "http://localhost:9095", "customHeaders": headers},
        headers=tenant.headers,
    )
    assert response.status_code == 400
    assert response.json["type"] in ("BadRequest", "error:RequestBodyDecodingFailure")


def test_null_custom_headers_mean_none(client, tenant):
    created = client.post(
        WEBHOOKS,
        json={"url": "http://localhost:9095", "customHeaders": None},
        headers=tenant.headers,
    )
    assert created.status_code == 200
    assert created.json["customHeaders"] == {}


@pytest.mark.parametrize("body", [{}, {"url": 42}, {"url": None}, [], "http://localhost:9095"])
def test_missing_or_mistyped_fields_are_400(client, tenant, body):
    response = client.post(WEBHOOKS, json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json["type"] in ("BadRequest", "error:RequestBodyDecodingFailure")


def test_unknown_event_types_are_refused(client, tenant):
    response = client.post(
        WEBHOOKS,
        json={"url": "http://localhost:9095", "eventTypes": ["Nope"]},
        headers=tenant.headers,
    )
    assert_problem(response, 400, "BadRequest")


def test_the_webhook_limit_answers_422(client, tenant, settings):
    for i in range(settings.max_webhooks_per_wallet):
        tenant.add_webhook(f"http://localhost:9095/{i}")
    response = client.post(WEBHOOKS, json={"url": "http://x.example"}, headers=tenant.headers)
    body = assert_problem(response, 422, "error:WalletManagementServiceError:TooManyWebhookError")
    assert f"limit={settings.max_webhooks_per_wallet}" in body["detail"]
    listed = client.get(WEBHOOKS, headers=tenant.headers).json["contents"]
    assert len(listed) == settings.max_webhooks_per_wallet


@pytest.mark.parametrize(
    "headers, detail",
    [
        ({}, "not provided"),
        ({"apikey": ""}, "Empty"),
        ({"apikey": "no-such-key-0123456789"}, "Invalid"),
    ],
)
def test_missing_empty_or_unknown_keys_answer_401(client, tenant, headers, detail):
    for call in (
        lambda: client.get(WEBHOOKS, headers=headers),
        lambda: client.post(WEBHOOKS, json={"url": "http://localhost:9095"}, headers=headers),
        lambda: client.delete(f"{WEBHOOKS}/00000000-0000-4000-8000-000000000001", headers=headers),
    ):
        body = assert_problem(call(), 401, "error:AuthenticationError:InvalidCredentials")
        assert detail in body["detail"]


def test_the_header_name_is_case_insensitive(client, tenant):
    response = client.get(WEBHOOKS, headers={"apiKey": tenant.api_key})
    assert response.status_code == 200


def test_rotating_the_secret_returns_a_new_one(client, tenant):
    created = tenant.add_webhook("http://localhost:9095")
    rotated = client.post(f"{WEBHOOKS}/{created['id']}/rotate-secret", headers=tenant.headers)
    assert rotated.status_code == 200
    assert rotated.json["secret"].startswith("whsec_")
    assert rotated.json["secret"] != created["secret"]
    assert TIMESTAMP.match(rotated.json["previousSecretExpiresAt"])
    other = onboard_tenant(client, "other")
    foreign = client.post(f"{WEBHOOKS}/{created['id']}/rotate-secret", headers=other.headers)
    assert_problem(foreign, 404, "NotFound")
