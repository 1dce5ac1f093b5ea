"""A tenant's console from a link the operator made, in a real browser: it shows that wallet
only, is refused once used or expired, and loads inside a page of an allowed site (another
site, as the operator's product is) but not inside any other site's page."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.browser.test_console import click, find, find_all, text
from tests.deliveries import wait_until
from tests.helpers import admin_headers, onboard_tenant
from tools.processes import free_port

pytestmark = pytest.mark.slow

ALLOWED = ("127.0.0.2", free_port())  # the operator's product, which frames the console
OTHER = ("127.0.0.3", free_port())  # any other site
SERVICE_ENV = {"CONSOLE_FRAME_ANCESTORS": f"http://{ALLOWED[0]}:{ALLOWED[1]}"}


class ProductPage:
    """A site of its own that frames the URL it is given: /?src=<url>."""

    def __init__(self, address: tuple[str, int]):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                src = parse_qs(urlsplit(self.path).query)["src"][0]
                page = (
                    "<!doctype html><title>Acme's product</title><h1>Your webhooks</h1>"
                    f'<iframe id="console" src="{src}" width="1100" height="760"></iframe>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(address, Handler)
        self.base = f"http://{address[0]}:{address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def framing(self, url: str) -> str:
        return f"{self.base}/?src={requests.utils.quote(url, safe='')}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def products():
    pages = ProductPage(ALLOWED), ProductPage(OTHER)
    yield pages
    for page in pages:
        page.close()


def make_link(served: str, wallet_id: str, **fields) -> str:
    made = requests.post(
        f"{served}/console/links",
        json={"walletId": wallet_id, **fields},
        headers=admin_headers(),
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return made.json()["url"]


def two_tenants(app):
    client = app.test_client()
    acme, globex = onboard_tenant(client, "acme"), onboard_tenant(client, "globex")
    acme.add_webhook("http://acme.example/hooks")
    globex.add_webhook("http://globex.example/hooks")
    return acme, globex


def test_a_link_shows_its_wallet_only_and_is_refused_once_used_or_expired(
    app, browser, served, screenshot
):
    acme, _ = two_tenants(app)
    link = make_link(served, acme.wallet_id)
    browser.get(link)
    page = text(browser)
    assert "http://acme.example/hooks" in page and "globex" not in page
    assert f"Wallet {acme.wallet_id}" in page
    assert [a.text for a in find_all(browser, "nav a")] == ["Webhooks", "Deliveries"]
    screenshot("20-link-opened")
    for operator_page in ("overview", "wallets"):
        browser.get(f"{served}/console/{operator_page}")
        assert "Not found" in text(browser)

    browser.get(link)
    assert "This link has already been used" in text(browser)
    screenshot("21-link-used")

    late = make_link(served, acme.wallet_id, expiresIn=1)
    time.sleep(1.5)
    browser.get(late)
    assert "This link has expired" in text(browser)

    # Signed out, the session is over for every copy of its cookie.
    browser.get(f"{served}/console/webhooks")
    click(browser, ".signout button")
    assert "You are signed out" in text(browser)
    browser.get(f"{served}/console/webhooks")
    assert "http://acme.example/hooks" not in text(browser)


def test_framed_from_an_allowed_site_it_works_and_from_another_it_does_not_load(
    app, browser, served, screenshot, products
):
    acme, _ = two_tenants(app)
    allowed, other = products
    browser.get(allowed.framing(make_link(served, acme.wallet_id)))
    browser.switch_to.frame(find(browser, "#console"))
    wait_until(lambda: "http://acme.example/hooks" in text(browser), "the framed console")
    assert "globex" not in text(browser)
    # Its forms work in the frame too: the cookie and the CSRF token travel with them.
    find(browser, "#url").send_keys("http://acme.example/second")
    click(browser, "#register ~ form button[type=submit]")
    assert "Webhook registered" in text(browser)
    browser.switch_to.default_content()
    screenshot("22-framed-by-an-allowed-site")
    listed = requests.get(f"{served}/events/webhooks", headers=acme.headers, timeout=10).json()
    assert len(listed["contents"]) == 2

    browser.get(other.framing(make_link(served, acme.wallet_id)))
    frame = find(browser, "#console")
    time.sleep(1.0)  # the refused frame settles on the browser's error page
    browser.switch_to.frame(frame)
    assert "acme.example" not in browser.page_source
    assert not browser.execute_script("return location.href").startswith(served)
    browser.switch_to.default_content()
    screenshot("23-framed-by-another-site-refused")
