"""The console in-process: sign-in, its security headers, CSRF, and wallet scoping."""

import re

from tests.helpers import ADMIN_TOKEN, connection_event, onboard_tenant

CONSOLE = "/cloud-agent/console"


def csrf_of(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(client, kind: str, secret: str):
    token = csrf_of(client.get(f"{CONSOLE}/sign-in"))
    return client.post(f"{CONSOLE}/sign-in", data={"csrf": token, "kind": kind, "secret": secret})


def test_pages_need_a_sign_in_and_say_why_a_key_is_refused(client):
    assert client.get(f"{CONSOLE}/deliveries").headers["Location"].endswith("/console/sign-in")
    refused = sign_in(client, "tenant", "not-a-key")
    assert refused.status_code == 401
    assert "That API key is not valid." in refused.get_data(as_text=True)


def test_security_headers_and_no_secret_in_pages(client, tenant):
    assert sign_in(client, "tenant", tenant.api_key).status_code == 303
    tenant.add_webhook("http://example.com/hook", customHeaders={"Authorization": "Bearer hush"})
    page = client.get(f"{CONSOLE}/webhooks")
    html = page.get_data(as_text=True)
    assert "example.com/hook" in html and "Authorization" in html
    assert "hush" not in html and tenant.api_key not in html and "whsec_" not in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    cookie = client.get_cookie("console_session", path="/cloud-agent/console")
    assert cookie.http_only and cookie.same_site == "Strict"
    assert tenant.api_key not in cookie.value


def test_actions_need_the_session_csrf_token(client, tenant):
    sign_in(client, "tenant", tenant.api_key)
    refused = client.post(f"{CONSOLE}/webhooks", data={"url": "http://example.com/x"})
    assert refused.status_code == 403
    other_site = client.post(
        f"{CONSOLE}/webhooks",
        data={"url": "http://example.com/x", "csrf": csrf_of(client.get(f"{CONSOLE}/webhooks"))},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json["contents"] == []


def test_register_shows_the_secret_once(client, tenant):
    sign_in(client, "tenant", tenant.api_key)
    token = csrf_of(client.get(f"{CONSOLE}/webhooks"))
    created = client.post(
        f"{CONSOLE}/webhooks",
        data={"url": "http://example.com/x", "csrf": token, "eventTypes": "ConnectionUpdated"},
    )
    assert created.status_code == 200 and "whsec_" in created.get_data(as_text=True)
    listed = client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json["contents"]
    assert [hook["eventTypes"] for hook in listed] == [["ConnectionUpdated"]]
    assert "whsec_" not in client.get(f"{CONSOLE}/webhooks").get_data(as_text=True)


def test_a_tenant_never_sees_another_wallets_delivery(app, client, tenant):
    tenant.add_webhook("http://example.com/acme")
    assert tenant.publish("ConnectionUpdated", connection_event()).status_code == 202
    delivery = client.get("/cloud-agent/events/deliveries", headers=tenant.headers).json
    delivery_id = delivery["contents"][0]["id"]
    other = onboard_tenant(app.test_client(), "globex")
    visitor = app.test_client()
    sign_in(visitor, "tenant", other.api_key)
    assert visitor.get(f"{CONSOLE}/deliveries/{delivery_id}").status_code == 404
    assert delivery_id not in visitor.get(f"{CONSOLE}/deliveries").get_data(as_text=True)
    sign_in(client, "tenant", tenant.api_key)
    assert client.get(f"{CONSOLE}/deliveries/{delivery_id}").status_code == 200


def test_a_removed_key_ends_the_session(client, tenant):
    sign_in(client, "tenant", tenant.api_key)
    assert client.get(f"{CONSOLE}/webhooks").status_code == 200
    entity = client.get("/cloud-agent/iam/entities", headers={"x-admin-api-key": ADMIN_TOKEN})
    for row in entity.json["contents"]:
        if row["walletId"] == tenant.wallet_id:
            client.delete(
                "/cloud-agent/iam/apikey-authentication",
                json={"entityId": row["id"], "apiKey": tenant.api_key},
                headers={"x-admin-api-key": ADMIN_TOKEN},
            )
    ended = client.get(f"{CONSOLE}/webhooks", follow_redirects=True)
    assert "no longer valid" in ended.get_data(as_text=True)


def test_the_operator_sees_wallets_and_the_last_hour(client, tenant):
    tenant.add_webhook("http://example.com/acme")
    tenant.publish("ConnectionUpdated", connection_event())
    assert sign_in(client, "admin", ADMIN_TOKEN).status_code == 303
    wallets = client.get(f"{CONSOLE}/wallets").get_data(as_text=True)
    assert "acme" in wallets and "example.com/acme" in wallets
    overview = client.get(f"{CONSOLE}/overview").get_data(as_text=True)
    assert "<svg" in overview and "Events published per minute" in overview
    assert client.get(f"{CONSOLE}/webhooks").status_code == 404  # a tenant's page


def test_the_test_button_sends_one_event_and_opens_its_delivery(client, tenant):
    created = tenant.add_webhook("http://example.com/tested")
    tenant.add_webhook("http://example.com/sibling")
    sign_in(client, "tenant", tenant.api_key)
    page = client.get(f"{CONSOLE}/webhooks")
    assert "Send test event" in page.get_data(as_text=True)
    sent = client.post(
        f"{CONSOLE}/webhooks/{created['id']}/test",
        data={"csrf": csrf_of(page), "type": "DIDStatusUpdated"},
    )
    assert sent.status_code == 303
    assert "/console/deliveries/" in sent.headers["Location"]
    delivery = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert "DIDStatusUpdated" in delivery and "http://example.com/tested" in delivery
    listed = client.get("/cloud-agent/events/deliveries", headers=tenant.headers).json
    assert [d["webhookId"] for d in listed["contents"]] == [created["id"]]


def test_a_v1a_webhook_shows_its_public_key_and_never_a_private_one(client, tenant):
    sign_in(client, "tenant", tenant.api_key)
    token = csrf_of(client.get(f"{CONSOLE}/webhooks"))
    created = client.post(
        f"{CONSOLE}/webhooks",
        data={"url": "http://example.com/ed", "csrf": token, "signatureScheme": "v1a"},
    ).get_data(as_text=True)
    assert "whpk_" in created and "whsec_" not in created and "whsk_" not in created
    listed = client.get(f"{CONSOLE}/webhooks").get_data(as_text=True)
    assert "v1a (Ed25519)" in listed and "whpk_" in listed


def test_the_deliveries_page_counts_no_further_than_a_thousand(client, tenant):
    tenant.add_webhook("http://example.com/acme")
    for _ in range(11):
        events = [{"type": "ConnectionUpdated", "data": connection_event()} for _ in range(100)]
        published = client.post(
            "/cloud-agent/events/batch", json={"events": events}, headers=tenant.headers
        )
        assert published.status_code == 202
    sign_in(client, "tenant", tenant.api_key)
    first = client.get(f"{CONSOLE}/deliveries").get_data(as_text=True)
    assert "1–25 of 1,000+, newest first." in first and 'rel="next"' in first
    last = client.get(f"{CONSOLE}/deliveries?offset=975").get_data(as_text=True)
    assert "976–1000 of 1,000+" in last and 'rel="next"' not in last
    assert "set “Created before”" in last
    beyond = client.get(f"{CONSOLE}/deliveries?offset=50000").get_data(as_text=True)
    assert "976–1000 of 1,000+" in beyond
    few = client.get(f"{CONSOLE}/deliveries?status=delivered").get_data(as_text=True)
    assert "No delivery matches these filters." in few
    # The API pages on without counting: one row past the page says another follows.
    page = client.get("/cloud-agent/events/deliveries?offset=950&limit=100", headers=tenant.headers)
    assert len(page.json["contents"]) == 100 and "next" in page.json
    end = client.get("/cloud-agent/events/deliveries?offset=1050&limit=50", headers=tenant.headers)
    assert len(end.json["contents"]) == 50 and "next" not in end.json


def test_the_operators_webhook_filter_takes_an_id_when_there_are_too_many_to_list(
    client, tenant, monkeypatch
):
    from app.console import views

    first = tenant.add_webhook("http://example.com/first")
    tenant.add_webhook("http://example.com/second")
    tenant.publish("ConnectionUpdated", connection_event())
    sign_in(client, "admin", ADMIN_TOKEN)
    listed = client.get(f"{CONSOLE}/deliveries").get_data(as_text=True)
    assert '<select id="f-webhook"' in listed and "example.com/second" in listed
    monkeypatch.setattr(views, "FILTER_CHOICES", 1)
    page = client.get(f"{CONSOLE}/deliveries?webhook={first['id']}").get_data(as_text=True)
    assert '<select id="f-webhook"' not in page and "example.com/second" not in page
    assert f'name="webhook" value="{first["id"]}"' in page
    assert page.count("example.com/first") == 1  # the one delivery, filtered by that id
