"""A real OAuth 2 token endpoint for tests (client-credentials grant): counts the token
requests, checks the client's credentials, and can hang, or rotate (forget every token it
issued, as a gateway does when its signing key changes)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

CLIENT_ID = "webhooks-client"
CLIENT_SECRET = "s3cret-client-secret-0123"


class TokenServer:
    def __init__(self, lifetime: int = 3600, delay: float = 0.0, host: str = "127.0.0.1"):
        self.lifetime = lifetime
        self.delay = delay
        self.requests: list[dict] = []  # the form of each token request
        self._valid: set[str] = set()
        self._lock = threading.Lock()
        tokens = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, answer = tokens._answer(dict(self.headers), form)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/oauth/token"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _answer(self, headers: dict, form: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(form)
        if self.delay:
            time.sleep(self.delay)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if _client(headers, form) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        token = "tok-" + secrets.token_urlsafe(16)
        with self._lock:
            self._valid.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def rotate(self) -> None:
        """Every token issued so far is refused from now on."""
        with self._lock:
            self._valid.clear()

    def accepts(self, headers: dict[str, str]) -> bool:
        """Whether a request's Authorization carries a token this server issued and holds."""
        value = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        scheme, _, token = value.partition(" ")
        with self._lock:
            return scheme == "Bearer" and token in self._valid

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _client(headers: dict, form: dict) -> tuple[str, str] | None:
    value = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
    if value.startswith("Basic "):
        pair = base64.b64decode(value[6:]).decode()
        client_id, _, secret = pair.partition(":")
        return unquote(client_id), unquote(secret)
    if "client_id" in form:
        return form["client_id"], form.get("client_secret", "")
    return None
