"""Secrets at rest: what a webhook holds that a database dump must not reveal (signing secrets
and keys, custom header values, passwords, client secrets, private keys) is stored sealed with
SECRET_ENCRYPTION_KEY.

A sealed value is `sealed:<key id>:<Fernet token>` (AES-128-CBC and HMAC-SHA256, from the
`cryptography` package). The key id names which of the configured keys sealed it, so opening
needs no trial and error, and the release step can tell without decrypting anything which
values still need sealing with the first key (`is_current`): that is how a key rotation and
the values stored before this existed are handled (`shared.services.secrets_at_rest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "sealed:"


class SecretBoxError(ValueError):
    """A stored value cannot be opened with the configured keys. Says which key id, never
    the value."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def check_key(key: str) -> str:
    """The key, if it is a Fernet key (URL-safe base64 of 32 bytes); ValueError otherwise."""
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        raise ValueError("a key is not URL-safe base64") from None
    if len(raw) != 32:
        raise ValueError(f"a key decodes to {len(raw)} bytes, 32 needed")
    return key


def key_id(key: str) -> str:
    """A short public name for a key: enough to tell keys apart, nothing to learn it from."""
    return hashlib.sha256(b"cloud-agent-webhooks key id:" + key.encode()).hexdigest()[:8]


class SecretBox:
    """Seals with the first key; opens what any of the keys sealed."""

    def __init__(self, keys: tuple[str, ...]):
        if not keys:
            raise ValueError("no key")
        self._fernets = {key_id(key): Fernet(key.encode()) for key in keys}
        self.current_id = key_id(keys[0])
        self._current = self._fernets[self.current_id]

    def seal(self, value: str) -> str:
        return f"{PREFIX}{self.current_id}:{self._current.encrypt(value.encode()).decode()}"

    def open(self, stored: str) -> str:
        """The value of a sealed string. A value stored before sealing existed (no prefix) is
        returned as it is, until the release step seals it."""
        if not stored.startswith(PREFIX):
            return stored
        ident, _, token = stored[len(PREFIX) :].partition(":")
        fernet = self._fernets.get(ident)
        if fernet is None:
            raise SecretBoxError(
                f"a secret was sealed with key {ident}, which SECRET_ENCRYPTION_KEY does not hold"
            )
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretBoxError(f"a secret sealed with key {ident} does not open") from None

    def is_current(self, stored: str) -> bool:
        """Sealed with the first key (nothing to do for it at the release step)."""
        return stored.startswith(f"{PREFIX}{self.current_id}:")

    def reseal(self, stored: str) -> str:
        """Sealed with the first key, whatever it was sealed with before (or if it was not)."""
        return stored if self.is_current(stored) else self.seal(self.open(stored))

    def seal_values(self, mapping: dict[str, str]) -> dict[str, str]:
        return {name: self.seal(value) for name, value in mapping.items()}

    def open_values(self, mapping: dict[str, str]) -> dict[str, str]:
        return {name: self.open(value) for name, value in mapping.items()}


@lru_cache(maxsize=4)
def _box(keys: tuple[str, ...]) -> SecretBox:
    return SecretBox(keys)


def box_for(settings) -> SecretBox:
    """The box of these settings' SECRET_ENCRYPTION_KEY, made once per process."""
    if not settings.secret_encryption_keys:
        # Entry points refuse to start without the key (settings_or_exit); this is for code
        # given settings built another way.
        raise SecretBoxError("SECRET_ENCRYPTION_KEY is not set")
    return _box(settings.secret_encryption_keys)
