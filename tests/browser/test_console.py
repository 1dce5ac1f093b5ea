"""A person in a real browser, offline: the API docs, and the console from sign-in to a failed
delivery sent again; a second tenant sees none of it."""

from __future__ import annotations

import time

import pytest
import requests

from tests.deliveries import wait_until
from tests.helpers import ADMIN_TOKEN, connection_event, onboard_tenant

pytestmark = pytest.mark.slow


def by(kind: str):
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def find(browser, css: str):
    return browser.find_element(by("CSS_SELECTOR"), css)


def find_all(browser, css: str):
    return browser.find_elements(by("CSS_SELECTOR"), css)


def text(browser) -> str:
    return find(browser, "body").text


def click(browser, css: str) -> None:
    """Click what leads to another page, and wait until that page has replaced this one."""
    from selenium.common.exceptions import WebDriverException

    old = find(browser, "html")
    find(browser, css).click()

    def replaced():
        try:
            old.is_enabled()  # raises once the page is gone
        except WebDriverException:
            # Stale, or (during the navigation itself) "node does not belong to the document".
            try:
                return bool(find_all(browser, "body"))
            except WebDriverException:
                return False
        return False

    wait_until(replaced, f"the page after clicking {css}")


def sign_in(browser, base: str, kind: str, secret: str) -> None:
    browser.get(f"{base}/console/sign-in")
    find(browser, f"input[name=kind][value={kind}]").click()
    find(browser, "#secret").send_keys(secret)
    click(browser, "form button[type=submit]")


def reload_until(browser, condition, what: str):
    def probe():
        browser.refresh()
        return condition(text(browser))

    return wait_until(probe, what)


def test_docs_render_their_operations_offline(browser, served, screenshot):
    browser.get(f"{served}/docs")
    wait_until(lambda: len(find_all(browser, ".opblock")) > 10, "Swagger UI's operations")
    assert "/events/webhooks" in text(browser)
    screenshot("01-docs")


def test_find_a_failed_delivery_see_why_and_send_it_again(
    app, browser, served, screenshot, worker, receiver
):
    tenant = onboard_tenant(app.test_client(), "acme")
    sign_in(browser, served, "tenant", tenant.api_key)
    assert "No webhooks yet" in text(browser)
    screenshot("02-webhooks-empty")

    for path in ("/ok", "/down"):
        find(browser, "#url").send_keys(receiver.url(path))
        find(browser, "#customHeaders").send_keys("Authorization: Bearer receiver-token")
        click(browser, "#register ~ form button[type=submit]")
        assert "Webhook registered" in text(browser)
        assert find(browser, "#secret").get_attribute("value").startswith("whsec_")
        if path == "/ok":
            screenshot("03-webhook-registered-secret-once")
        click(browser, "main a[href$='/console/webhooks']")
    receiver.behave("/down", then=500)
    page = text(browser)
    assert receiver.url("/ok") in page and receiver.url("/down") in page
    assert "receiver-token" not in browser.page_source and tenant.api_key not in page
    screenshot("04-webhooks")

    published = requests.post(
        f"{served}/events",
        json={"type": "ConnectionUpdated", "data": connection_event()},
        headers={"apikey": tenant.api_key},
        timeout=10,
    )
    assert published.status_code == 202
    event_id = published.json()["id"]

    click(browser, "nav a[href$='/console/deliveries']")
    reload_until(
        browser, lambda page: page.count("delivered") >= 1 and "HTTP 500" in page, "deliveries"
    )
    reload_until(browser, lambda page: "failed" in page.split("Last result", 1)[1], "a failure")
    screenshot("05-deliveries")

    # The delivery that reached /ok: its attempt, headers (values hidden), the event body.
    find(browser, "#f-webhook").send_keys(receiver.url("/ok"))
    click(browser, ".filters button[type=submit]")
    click(browser, "tbody tr a")
    page = text(browser)
    assert "HTTP 200" in page and event_id in page and "Bearer" not in page
    assert "Authorization" in page and "webhook-signature" in page

    # The failing one: three attempts, each HTTP 500, then sent again from the page.
    browser.get(f"{served}/console/deliveries?status=failed")
    click(browser, "tbody tr a")
    assert len(find_all(browser, "tbody tr")) >= 3
    attempts = [row.text for row in find_all(browser, "section:nth-of-type(2) tbody tr")]
    assert len(attempts) == 3 and all("HTTP 500" in row for row in attempts), attempts
    screenshot("06-delivery-failed-three-attempts")

    receiver.behave("/down", then=200)
    click(browser, "form[action$='/redeliver'] button")
    assert "Redelivery started" in text(browser)
    reload_until(browser, lambda page: "HTTP 200" in page, "the redelivered attempt")
    assert "Delivery delivered" in text(browser)
    assert len(receiver.at("/down")) == 4
    screenshot("07-delivery-redelivered")

    # At phone width the list still reads, one column.
    browser.set_window_size(390, 844)
    browser.get(f"{served}/console/deliveries")
    browser.execute_script("document.getElementById('deliveries-region').scrollIntoView()")
    screenshot("08-deliveries-phone")
    browser.set_window_size(1280, 1000)

    # A second tenant sees none of it.
    other = onboard_tenant(app.test_client(), "globex")
    click(browser, ".signout button")
    sign_in(browser, served, "tenant", other.api_key)
    assert "No webhooks yet" in text(browser)
    browser.get(f"{served}/console/deliveries")
    assert "No deliveries yet" in text(browser) and receiver.url() not in browser.page_source
    screenshot("09-second-tenant-sees-nothing")

    # The operator: wallets with their webhooks, and the last hour.
    click(browser, ".signout button")
    sign_in(browser, served, "admin", ADMIN_TOKEN)
    assert "The last hour" in text(browser)
    assert len(find_all(browser, "svg rect.bar")) > 0
    screenshot("10-overview")
    click(browser, "nav a[href$='/console/wallets']")
    assert "acme" in text(browser) and receiver.url("/down") in text(browser)
    screenshot("11-wallets")


def test_a_wrong_key_and_a_removed_key_say_so(app, browser, served, screenshot):
    sign_in(browser, served, "tenant", "not-a-valid-key-at-all")
    assert "That API key is not valid." in text(browser)
    screenshot("12-sign-in-refused")
    client = app.test_client()
    tenant = onboard_tenant(client, "acme")
    sign_in(browser, served, "tenant", tenant.api_key)
    admin = {"x-admin-api-key": ADMIN_TOKEN}
    entity = next(
        row
        for row in client.get("/cloud-agent/iam/entities", headers=admin).json["contents"]
        if row["walletId"] == tenant.wallet_id
    )
    removed = client.delete(
        "/cloud-agent/iam/apikey-authentication",
        json={"entityId": entity["id"], "apiKey": tenant.api_key},
        headers=admin,
    )
    assert removed.status_code == 200
    time.sleep(0.1)
    browser.get(f"{served}/console/deliveries")
    assert "no longer valid" in text(browser)
    screenshot("13-key-removed")
