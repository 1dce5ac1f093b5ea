"""Standard Webhooks signatures of "id.timestamp.body": `v1,<base64 HMAC-SHA256>` with a
`whsec_` secret, or `v1a,<base64 Ed25519 signature>` with a `whsk_` private key, whose `whpk_`
public key receivers verify with (they then hold no secret that could forge a request).

HMAC is written here rather than taken from the `standardwebhooks` package because its client
pulls in an HTTP stack we do not need at run time; the tests verify every delivery with that
package, and `v1a` with PyNaCl (libsodium), an implementation independent of this one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SECRET_PREFIX = "whsec_"
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def generate_private_key() -> str:
    """A `whsk_` Ed25519 private key: base64 of its 32-byte seed."""
    return PRIVATE_KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def public_key_of(private_key: str) -> str:
    """The `whpk_` public key (base64 of the raw 32 bytes) of a `whsk_` private key."""
    raw = _ed25519(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode()


def is_asymmetric(secret: str) -> bool:
    return secret.startswith(PRIVATE_KEY_PREFIX)


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


@lru_cache(maxsize=1024)
def _ed25519(private_key: str) -> Ed25519PrivateKey:
    # Loading a key costs as much as a signature: each webhook's is loaded once per process.
    seed = base64.b64decode(private_key.removeprefix(PRIVATE_KEY_PREFIX))
    return Ed25519PrivateKey.from_private_bytes(seed)


def signature_header(secrets_in_use, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: one `v1,…` or `v1a,…` per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    parts = []
    for secret in secrets_in_use:
        if is_asymmetric(secret):
            parts.append("v1a," + base64.b64encode(_ed25519(secret).sign(signed)).decode())
        else:
            digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
            parts.append("v1," + base64.b64encode(digest).decode())
    return " ".join(parts)
