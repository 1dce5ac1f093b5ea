"""`webhook-logger [PORT]`: a receiver to point a webhook at while trying the service.

It prints every request it gets (headers masked, JSON bodies pretty-printed) and answers as told:
200 by default, a fixed status, failures for the first N requests (to watch the retries), and
401 when a Standard Webhooks signature does not verify against the secret (`v1`) or public
key (`v1a`) it was given.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.signing import PUBLIC_KEY_PREFIX, SECRET_PREFIX, signature_header

DEFAULT_PORT = 9095  # the port of the Identus docs' example receiver
TOLERANCE = 5 * 60  # seconds; Standard Webhooks rejects timestamps further away than this
TEXT_PREVIEW = 2000  # characters of a non-JSON body worth reading on a console
MAX_BODY = 10 * 1024 * 1024  # a guard against filling memory, not a protocol limit
SECRET_NAMES = {"authorization", "proxy-authorization", "apikey", "x-api-key", "cookie"}
SECRET_PARTS = ("token", "secret", "key", "signature")
COLOURS = {"dim": "2", "method": "1;32", "name": "36", "body": "33", "ok": "32", "bad": "1;31"}
NO_BODY = (204, 304)  # statuses that must not carry a body, or keep-alive clients get confused


def mask(name: str, value: str) -> str:
    """Enough of a credential to tell which one was sent, not enough to reuse it."""
    lowered = name.lower()
    if lowered not in SECRET_NAMES and not any(part in lowered for part in SECRET_PARTS):
        return value
    scheme, _, credential = value.partition(" ")
    if credential and lowered.endswith("authorization"):  # keep "Bearer"/"Basic": it helps
        return f"{scheme} {mask(name, credential)}"
    return value[:4] + "…" if len(value) > 8 else "…"


def describe_body(body: bytes) -> str:
    if not body:
        return "(empty body)"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode("utf-8", errors="replace")
        if len(text) <= TEXT_PREVIEW:
            return text
        return f"{text[:TEXT_PREVIEW]}… ({len(text) - TEXT_PREVIEW} more characters)"


def signature_problem(secret: str | None, headers, body: bytes, now: float, public_key=None):
    """None when the request carries a valid Standard Webhooks signature (v1 with `secret`, or
    v1a with `public_key`, an Ed25519PublicKey), else why not."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    received = headers.get("webhook-signature")
    if not (msg_id and stamp and received):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        timestamp = int(stamp)
    except ValueError:
        return f"webhook-timestamp {stamp!r} is not a number of seconds"
    if abs(age := now - timestamp) > TOLERANCE:  # an old signature could be a replay
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        return f"webhook-timestamp is {when}, more than {TOLERANCE} s away"
    # Several signatures are sent while a secret is being rotated: any one may match.
    candidates = received.split()
    if secret:
        expected = signature_header([secret], msg_id, timestamp, body).encode()
        if any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates):
            return None
    if public_key is not None:
        signed = f"{msg_id}.{timestamp}.".encode() + body
        if any(_verifies(public_key, candidate, signed) for candidate in candidates):
            return None
    if secret and public_key is not None:
        return "no signature matches this secret or public key and body"
    return (
        "no v1 signature matches this secret and body"
        if secret
        else ("no v1a signature matches this public key and body")
    )


def _verifies(public_key: Ed25519PublicKey, candidate: str, signed: bytes) -> bool:
    version, _, encoded = candidate.partition(",")
    if version != "v1a":
        return False
    try:
        public_key.verify(base64.b64decode(encoded, validate=True), signed)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def parse_public_key(value: str) -> Ed25519PublicKey:
    """A whpk_ key (base64 of the 32 raw bytes); ValueError when it is not one."""
    try:
        raw = base64.b64decode(value.removeprefix(PUBLIC_KEY_PREFIX), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ValueError("not a whpk_ Ed25519 public key") from None


class LoggerServer(ThreadingHTTPServer):
    def __init__(self, address, options, colour: bool):
        super().__init__(address, Handler)
        self.options = options
        self.colour = colour
        self.lock = threading.Lock()  # keeps one request's lines together, and the counters
        self.received = 0
        self.failed = 0
        self.last_at: float | None = None

    def paint(self, text: str, style: str) -> str:
        return f"\x1b[{COLOURS[style]}m{text}\x1b[0m" if self.colour else text

    def describe(self, method: str, path: str, headers, body: bytes, now: float) -> list[str]:
        with self.lock:
            self.received += 1
            number, since, self.last_at = self.received, self.last_at, now
        # The gap since the previous request is what shows the retry spacing.
        gap = f"  (+{now - since:.2f} s)" if since is not None else ""
        moment = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lines = [self.paint(f"{'─' * 30} #{number}  {moment}{gap}", "dim")]
        lines.append(self.paint(f"{method} {path}", "method"))
        lines += [f"  {self.paint(k, 'name')}: {mask(k, v)}" for k, v in headers.items()]
        lines.append(self.paint(describe_body(body), "body"))
        return lines

    def decide(self, method: str, headers, body: bytes, now: float, lines: list[str]):
        """The answer's status and the reason printed with it; adds the signature's verdict."""
        options = self.options
        if method in ("GET", "HEAD"):  # a browser checking the logger is up: never refused
            return 200, ""
        if options.secret or options.public_key:
            problem = signature_problem(options.secret, headers, body, now, options.verify_key)
            if problem is not None:
                lines.append(self.paint(f"signature: INVALID ({problem})", "bad"))
                return 401, "invalid signature"
            lines.append(self.paint("signature: valid", "ok"))
        with self.lock:  # GETs are not counted, so a browser tab does not use up the failures
            self.failed += 1
            failed = self.failed
        if failed <= options.fail_first:
            return 500, f"failure {failed} of --fail-first {options.fail_first}"
        return options.status, ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the service's HTTP session expects
    server: LoggerServer

    def handle_any(self) -> None:
        try:
            body = self.read_body()
        except ValueError as error:
            self.close_connection = True  # the rest of the stream cannot be trusted
            self.send_error(400, str(error))
            return
        server, now = self.server, time.time()
        lines = server.describe(self.command, self.path, self.headers, body, now)
        status, reason = server.decide(self.command, self.headers, body, now, lines)
        style = "ok" if 200 <= status < 300 else "bad"
        lines.append(server.paint(f"→ {status}" + (f" ({reason})" if reason else ""), style))
        with server.lock:
            print("\n".join(lines), flush=True)  # flushed so `| tee` and `| grep` see it now
        payload = {"ok": 200 <= status < 300, "status": status}
        if reason:
            payload["reason"] = reason
        data = b"" if status in NO_BODY else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def read_body(self) -> bytes:
        if "Transfer-Encoding" in self.headers:  # not worth a chunked decoder in a debug tool
            raise ValueError("send the body with a Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"Content-Length {length} is out of range")
        return self.rfile.read(length)

    def log_request(self, code="-", size="-") -> None:
        pass  # each request is printed in full above; errors still reach stderr


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="webhook-logger",
        description="Print every request a webhook sends, and answer as told.",
        epilog="GET and HEAD always answer 200, so a browser can check the logger is up. "
        "Other methods: 401 when --secret or --public-key is given and no signature verifies, "
        "else 500 for the first --fail-first requests, else --status.",
    )
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT, help="default 9095")
    parser.add_argument("--host", default="0.0.0.0", help="default: all interfaces")
    parser.add_argument("--status", type=int, default=200, help="the answer (default 200)")
    parser.add_argument(
        "--fail-first",
        type=int,
        default=0,
        metavar="N",
        help="answer 500 to the first N requests, then --status (watch the 3 attempts)",
    )
    parser.add_argument(
        "--secret",
        metavar="whsec_…",
        help="verify Standard Webhooks signatures with this secret; answer 401 when invalid",
    )
    parser.add_argument(
        "--public-key",
        metavar="whpk_…",
        help="verify v1a (Ed25519) signatures with this public key; answer 401 when invalid",
    )
    parser.add_argument("--no-color", action="store_true", help="plain output even on a TTY")
    options = parser.parse_args(argv)
    if not 200 <= options.status <= 599:
        parser.error("--status must be between 200 and 599")
    if options.fail_first < 0:
        parser.error("--fail-first must not be negative")
    if options.secret:  # checked now, not on the first request; accepts unpadded base64 too
        raw = options.secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except binascii.Error:
            key = b""
        if not key:
            parser.error("--secret must be whsec_ followed by base64")
        options.secret = SECRET_PREFIX + base64.b64encode(key).decode()
    options.verify_key = None
    if options.public_key:
        try:
            options.verify_key = parse_public_key(options.public_key)
        except ValueError:
            parser.error("--public-key must be whpk_ followed by the base64 of 32 bytes")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    sys.stdout.reconfigure(errors="replace")  # a non-UTF-8 console gets "?" for "─", not a crash
    colour = sys.stdout.isatty() and not options.no_color and "NO_COLOR" not in os.environ
    try:
        server = LoggerServer((options.host, options.port), options, colour)
    except OSError as error:
        raise SystemExit(f"webhook-logger: cannot listen on {options.port}: {error}") from None
    # `docker stop` and `kill` should end it as quietly as Ctrl-C does. Ctrl-C (SIGINT) too when
    # it was started from a background shell, which leaves SIGINT ignored for its children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host, port = server.server_address[:2]
    print(
        f"webhook-logger listening on {host}:{port}: register http://localhost:{port}/ "
        "(Ctrl-C stops it)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nwebhook-logger stopped", flush=True)
    finally:
        server.server_close()
    return 0
