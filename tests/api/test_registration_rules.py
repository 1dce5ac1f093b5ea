"""With WEBHOOK_HTTPS_ONLY and the network guard on, registration refuses what delivery would."""

import pytest

from tests.helpers import assert_problem

SERVICE_ENV = {
    "WEBHOOK_HTTPS_ONLY": "true",
    "WEBHOOK_BLOCK_PRIVATE_NETWORKS": "true",
    "WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16",
}
WEBHOOKS = "/cloud-agent/events/webhooks"


def register(client, tenant, url):
    return client.post(WEBHOOKS, json={"url": url}, headers=tenant.headers)


def test_plain_http_is_refused(client, tenant):
    body = assert_problem(register(client, tenant, "http://93.184.215.14/hook"), 400, "BadRequest")
    assert "WEBHOOK_HTTPS_ONLY" in body["detail"]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "169.254.169.254", "10.0.0.1", "192.168.1.1", "[::1]", "0.0.0.0"],
)
def test_private_loopback_and_metadata_addresses_are_refused(client, tenant, host):
    body = assert_problem(register(client, tenant, f"https://{host}/hook"), 400, "BadRequest")
    assert body["detail"] == "url: refused by the network guard"
    assert client.get(WEBHOOKS, headers=tenant.headers).json["contents"] == []


def test_the_tenant_is_not_told_what_a_name_resolves_to_the_operators_log_is(
    client, tenant, caplog
):
    with caplog.at_level("WARNING", logger="shared.validation"):
        body = assert_problem(register(client, tenant, "https://localhost/hook"), 400, "BadRequest")
    assert "127.0.0.1" not in body["detail"] and "::1" not in body["detail"]
    assert "localhost resolves to" in caplog.text and "127.0.0.1" in caplog.text


def test_public_and_allowed_addresses_are_accepted(client, tenant):
    assert register(client, tenant, "https://93.184.215.14/hook").status_code == 200
    assert register(client, tenant, "https://10.20.3.4/hook").status_code == 200


def test_a_name_that_does_not_resolve_now_is_left_to_the_delivery_time_check(client, tenant):
    # The guard checks the address connected to at every attempt; registration only refuses
    # what it can see is refused.
    assert register(client, tenant, "https://no-such-host.invalid/hook").status_code == 200
