"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Written here rather than taken from the `standardwebhooks` package because its client pulls in
an HTTP stack we do not need at run time; the tests verify every delivery with that package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature_header(secrets_in_use, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: one `v1,…` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets_in_use:
        digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
        parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)
