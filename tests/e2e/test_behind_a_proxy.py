"""Behind a TLS proxy: web believes X-Forwarded-Proto only from FORWARDED_ALLOW_IPS, so the
console's cookie keeps Secure and links say https; a link's token never reaches the log."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from shared.models import DEFAULT_WALLET_ID
from tests.e2e.conftest import Stack
from tests.helpers import admin_headers

pytestmark = pytest.mark.slow
FROM_PROXY = {"X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("server", [None, "cloud-agent-webhooks web"], ids=["procfile", "granian"])
@pytest.mark.parametrize(
    "allowed, believed", [("127.0.0.1,::1", True), ("10.9.9.9", False)], ids=["trusted", "not"]
)
def test_the_proxys_https_is_believed_from_allowed_addresses_only(
    service_env, tmp_path, allowed, believed, server
):
    stack = Stack({**service_env, "FORWARDED_ALLOW_IPS": allowed}, tmp_path)
    try:
        web = stack.web(command=server)
        base = f"http://127.0.0.1:{web.port}/cloud-agent"
        sign_in = requests.get(f"{base}/console/sign-in", headers=FROM_PROXY, timeout=10)
        assert sign_in.status_code == 200
        attributes = [part.strip() for part in sign_in.headers["Set-Cookie"].split(";")]
        assert ("Secure" in attributes) is believed
        made = requests.post(
            f"{base}/console/links",
            json={"walletId": str(DEFAULT_WALLET_ID)},
            headers={**admin_headers(), **FROM_PROXY},
            timeout=10,
        )
        assert made.status_code == 201
        url = made.json()["url"]
        assert urlsplit(url).scheme == ("https" if believed else "http")
        opened = requests.get(
            url.replace("https://", "http://"),
            headers=FROM_PROXY,
            allow_redirects=False,
            timeout=10,
        )
        assert opened.status_code == 303
        token = parse_qs(urlsplit(url).query)["token"][0]
        web.process.wait_for_log('"GET /cloud-agent/console/links/open" 303', timeout=10)
        assert token not in web.process.log()
    finally:
        stack.close()
