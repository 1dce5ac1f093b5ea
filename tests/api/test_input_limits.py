"""Every input answers 2xx or a 4xx in the error shape: URLs, custom headers, JSON bodies."""

import json

import pytest

from tests.helpers import admin_headers, assert_problem, connection_event

WEBHOOKS = "/cloud-agent/events/webhooks"
EVENTS = "/cloud-agent/events"


def register(client, tenant, **body):
    return client.post(WEBHOOKS, json=body, headers=tenant.headers)


def raw_post(client, path, raw: str, headers):
    return client.post(
        path,
        data=raw.encode("utf-8", "surrogatepass"),
        content_type="application/json",
        headers=headers,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a\u0000b",
        "http://example.com/a\u0007b",
        "http://example.com/\u007f",
        "http://example.com/\u0085",
        "http://example.com/\ud800",
        "http://exa\u0000mple.com/",
    ],
)
def test_urls_with_control_characters_are_refused(client, tenant, url):
    body = assert_problem(register(client, tenant, url=url), 400, "BadRequest")
    assert "url" in body["detail"]
    assert client.get(WEBHOOKS, headers=tenant.headers).json["contents"] == []


def test_a_url_of_2048_characters_is_accepted_and_one_more_refused(client, tenant):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert register(client, tenant, url=url).status_code == 200
    assert_problem(register(client, tenant, url=url + "a"), 400, "BadRequest")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Price": "€5"},
        {"X-Tab": "a\tb"},
        {"X-Nul": "a\u0000b"},
        {"X-Bell": "a\u0007b"},
        {"X-Lead": " a"},
        {"X-Trail": "a "},
        {"X-Break": "a\r\nX-Injected: 1"},
        {"X-Long": "a" * 1025},
        {"X" * 257: "v"},
        {"X Space": "v"},
        {"X-\u00e9": "v"},
        {"": "v"},
    ],
)
def test_header_names_and_values_every_http_stack_sends_unchanged(client, tenant, headers):
    response = register(client, tenant, url="http://localhost:9095", customHeaders=headers)
    body = assert_problem(response, 400, "BadRequest")
    assert "customHeaders" in body["detail"]
    # Values are often secrets: the answer never echoes them.
    assert "€5" not in body["detail"]


def test_headers_at_their_limits_are_accepted(client, tenant):
    headers = {"X" * 256: "v" * 1024, "Authorization": "Bearer a b~!", "X-Empty": ""}
    created = register(client, tenant, url="http://localhost:9095", customHeaders=headers)
    assert created.status_code == 200, created.json
    # Accepted; answers name the headers and hide every value.
    assert created.json["customHeaders"] == dict.fromkeys(headers, "••••••")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def event_with(raw_value: str) -> str:
    """A valid ConnectionUpdated body whose data carries `raw_value` (raw JSON text) as "x"."""
    body = json.dumps({"type": "ConnectionUpdated", "data": connection_event(x=0)})
    return body.replace('"x": 0', f'"x": {raw_value}')


@pytest.mark.parametrize("depth", [65, 1_000, 20_000])
def test_deep_event_data_is_400(client, tenant, depth):
    raw = event_with(nested(depth - 1))
    body = assert_problem(raw_post(client, EVENTS, raw, tenant.headers), 400, "BadRequest")
    assert "nesting deeper than 64" in body["detail"]


def test_data_nested_64_levels_is_accepted(client, tenant):
    raw = event_with(nested(62))
    assert raw_post(client, EVENTS, raw, tenant.headers).status_code == 202


@pytest.mark.parametrize(
    "path", [WEBHOOKS, "/cloud-agent/wallets", "/cloud-agent/iam/entities", EVENTS]
)
def test_any_deep_json_body_is_400(client, tenant, path):
    headers = {**tenant.headers, **admin_headers()}
    response = raw_post(client, path, nested(20_000), headers)
    assert_problem(response, 400, "BadRequest")


@pytest.mark.parametrize(
    "extra",
    [
        '"a\\u0000b"',  # PostgreSQL text cannot hold NUL
        '"\\ud800"',  # an unpaired surrogate cannot be encoded
        "NaN",
        "Infinity",
        "1e400",
    ],
)
def test_event_data_that_cannot_be_stored_or_resent_is_400(client, tenant, extra):
    raw = event_with(extra)
    assert_problem(raw_post(client, EVENTS, raw, tenant.headers), 400, "BadRequest")


def test_an_integer_of_5000_digits_is_a_decoding_failure(client, tenant):
    response = raw_post(client, EVENTS, event_with("9" * 5000), tenant.headers)
    assert_problem(response, 400, "error:RequestBodyDecodingFailure")


def test_numbers_and_strings_at_their_extremes_pass_through(client, tenant):
    data = connection_event(big=9 * 10**300, small=-(2**63), tiny=5e-324, text="é" * 100_000)
    response = tenant.publish("ConnectionUpdated", data)
    assert response.status_code == 202
    assert response.json["data"]["big"] == 9 * 10**300
    assert response.json["data"]["text"] == "é" * 100_000


def test_a_wallet_name_with_nul_is_400(client):
    response = client.post(
        "/cloud-agent/wallets", json={"name": "a\u0000b"}, headers=admin_headers()
    )
    assert_problem(response, 400, "BadRequest")
