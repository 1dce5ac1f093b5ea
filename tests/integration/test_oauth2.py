"""Receivers behind an OAuth 2 gateway, against a real worker and a real token endpoint in
the test process: a token is fetched once and reused, a refused (rotated) token is replaced
on the next attempt, and a token endpoint that hangs or refuses the client costs one failed
attempt, recorded with its reason, within the attempt's deadline."""

import pytest

from tests.deliveries import deliveries_of, detail, header, wait_until
from tests.helpers import connection_event
from tests.token_server import CLIENT_ID, CLIENT_SECRET, TokenServer

TIMEOUT = 2.0
SERVICE_ENV = {"WEBHOOK_TIMEOUT": str(TIMEOUT), "WEBHOOK_RETRY_COUNTDOWN": "0.3"}


@pytest.fixture(autouse=True)
def _running(worker):
    """A real worker process."""


@pytest.fixture
def token_server():
    server = TokenServer()
    yield server
    server.close()


def oauth2(token_server: TokenServer, **extra) -> dict:
    return {
        "type": "oauth2",
        "tokenUrl": token_server.url,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        **extra,
    }


def _ended(client, tenant, event_id: str) -> dict:
    def settled():
        (delivery,) = deliveries_of(client, tenant.headers, event_id)
        return delivery if delivery["status"] in ("delivered", "failed") else None

    delivery = wait_until(settled, "the delivery to end")
    return detail(client, tenant.headers, delivery["id"])


def test_a_token_is_fetched_once_and_a_refused_one_is_replaced_on_the_next_attempt(
    client, tenant, receiver, token_server
):
    receiver.behave("/gateway", check=lambda h: None if token_server.accepts(h) else 401)
    tenant.add_webhook(receiver.url("/gateway"), auth=oauth2(token_server, scope="events:write"))
    for _ in range(3):
        published = tenant.publish("ConnectionUpdated", connection_event()).json
        assert _ended(client, tenant, published["id"])["status"] == "delivered"
    assert token_server.count == 1
    assert token_server.requests[0] == {"grant_type": "client_credentials", "scope": "events:write"}
    first_token = header(receiver.at("/gateway")[0], "Authorization")
    assert all(header(r, "Authorization") == first_token for r in receiver.at("/gateway"))

    token_server.rotate()  # the gateway forgets every token it issued
    published = tenant.publish("ConnectionUpdated", connection_event()).json
    delivered = _ended(client, tenant, published["id"])
    assert delivered["status"] == "delivered"
    assert [a["statusCode"] for a in delivered["attemptLog"]] == [401, 200]
    assert token_server.count == 2
    assert header(receiver.at("/gateway")[-1], "Authorization") != first_token


def test_a_hanging_token_endpoint_is_a_timed_out_attempt_within_the_deadline(
    client, tenant, receiver
):
    hanging = TokenServer(delay=30)
    try:
        tenant.add_webhook(receiver.url("/behind-hanging"), auth=oauth2(hanging))
        published = tenant.publish("ConnectionUpdated", connection_event()).json
        (delivery,) = wait_until(
            lambda: [
                d
                for d in deliveries_of(client, tenant.headers, published["id"])
                if d["attempts"] >= 1 and d["status"] != "in_flight"
            ],
            "the first attempt to be recorded",
        )
        first = detail(client, tenant.headers, delivery["id"])["attemptLog"][0]
    finally:
        hanging.close()
    assert first["statusCode"] is None
    assert first["error"] == f"timeout: no token from the token endpoint within {TIMEOUT:g}s"
    assert TIMEOUT * 1000 - 100 <= first["durationMs"] <= TIMEOUT * 1000 + 500
    assert receiver.at("/behind-hanging") == []


def test_a_refused_client_is_a_failed_attempt_with_the_endpoints_answer(
    client, tenant, receiver, token_server
):
    wrong = oauth2(token_server, clientSecret="not-the-secret", clientAuthentication=None)
    tenant.add_webhook(receiver.url("/refused-client"), auth=wrong)
    published = tenant.publish("ConnectionUpdated", connection_event()).json
    failed = _ended(client, tenant, published["id"])
    assert failed["status"] == "failed"
    errors = {attempt["error"] for attempt in failed["attemptLog"]}
    assert errors == {"oauth2: the token endpoint answered 401 (invalid_client)"}
    assert receiver.at("/refused-client") == []
    assert "not-the-secret" not in str(failed)


def test_client_secret_post_sends_the_credentials_in_the_form(
    client, tenant, receiver, token_server
):
    receiver.behave("/post-auth", check=lambda h: None if token_server.accepts(h) else 401)
    auth = oauth2(
        token_server, audience="https://receiver.example", clientAuthentication="client_secret_post"
    )
    tenant.add_webhook(receiver.url("/post-auth"), auth=auth)
    published = tenant.publish("ConnectionUpdated", connection_event()).json
    assert _ended(client, tenant, published["id"])["status"] == "delivered"
    (form,) = token_server.requests
    assert form["client_id"] == CLIENT_ID and form["client_secret"] == CLIENT_SECRET
    assert form["audience"] == "https://receiver.example"
