"""Behind a TLS proxy: its X-Forwarded-Proto is believed from FORWARDED_ALLOW_IPS only.

The request is then https to the app (the console's cookies stay Secure, links say https);
from any other address the header is ignored, so a client cannot claim https for itself.
Done in the app rather than by the HTTP server, so it holds whichever server runs it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

SCHEMES = ("http", "https")


class ForwardedProto:
    def __init__(self, wsgi_app, allowed: tuple | None):
        """`allowed`: the proxies' networks (settings.forwarded_allow_ips); None: any."""
        self.wsgi_app = wsgi_app
        self.networks = allowed
        self.trusted = lru_cache(maxsize=256)(self._trusted)

    def __call__(self, environ, start_response):
        proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if proto and self.trusted(environ.get("REMOTE_ADDR") or ""):
            # A chain of proxies lists one value each; the first is the client's.
            scheme = proto.split(",", 1)[0].strip().lower()
            if scheme in SCHEMES:
                environ["wsgi.url_scheme"] = scheme
        return self.wsgi_app(environ, start_response)

    def _trusted(self, address: str) -> bool:
        if self.networks is None:
            return True
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in network for network in self.networks)
