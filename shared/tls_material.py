"""A webhook's `tls`: the client certificate and key it presents (mutual TLS), and a private CA
that alone is trusted for its receiver's certificate.

Checked when a client sends it, so that a bad PEM, an encrypted key or a key that does not
belong to its certificate is a 400 at registration and not a failed attempt later. The key is
stored as unencrypted PKCS #8 PEM (what the TLS stack loads), sealed.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from shared.errors import InvalidInput
from shared.secret_box import SecretBox
from shared.timeutil import isoformat, utcnow

MAX_PEM_LENGTH = 64 * 1024
SHOWN = ("clientCertificate", "caCertificate", "clientCertificateExpiresAt")


def check_tls(tls: dict | None, box: SecretBox, stored: dict | None = None) -> dict | None:
    """The `tls` to store (the key sealed); `stored` is the webhook's current one when it is
    being changed: a change without `clientKey` keeps the stored key. An empty object is
    none, as null is."""
    if tls is None or tls == {}:
        return None
    if not isinstance(tls, dict):
        raise InvalidInput("tls: must be an object")
    certificate_pem = _pem(tls, "clientCertificate")
    key_pem = _pem(tls, "clientKey")
    ca_pem = _pem(tls, "caCertificate")
    checked = {}
    if certificate_pem is not None:
        if key_pem is None and stored is not None and stored.get("clientKey"):
            key_pem = box.open(stored["clientKey"])
        checked = _client_pair(certificate_pem, key_pem, box)
    elif key_pem is not None:
        raise InvalidInput("tls.clientCertificate: required with a clientKey")
    if ca_pem is not None:
        _certificates(ca_pem, "caCertificate")
        checked["caCertificate"] = ca_pem
    if not checked:
        raise InvalidInput("tls: give clientCertificate and clientKey, caCertificate, or both")
    return checked


def _pem(tls: dict, name: str) -> str | None:
    value = tls.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"tls.{name}: a PEM text")
    if len(value) > MAX_PEM_LENGTH:
        raise InvalidInput(f"tls.{name}: at most {MAX_PEM_LENGTH} characters")
    return value


def _certificates(pem: str, name: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise InvalidInput(f"tls.{name}: not a PEM certificate") from None
    return certificates


def _client_pair(certificate_pem: str, key_pem: str | None, box: SecretBox) -> dict:
    if key_pem is None:
        raise InvalidInput("tls.clientKey: required with a clientCertificate")
    leaf = _certificates(certificate_pem, "clientCertificate")[0]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        raise InvalidInput(
            "tls.clientKey: encrypted keys are not accepted; send it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # Neither the key nor the parser's message is echoed: it is a secret.
        raise InvalidInput("tls.clientKey: not a PEM private key") from None
    if _public(leaf.public_key()) != _public(key.public_key()):
        raise InvalidInput("tls.clientKey: does not belong to the clientCertificate")
    expires = leaf.not_valid_after_utc
    if expires <= utcnow():
        raise InvalidInput(f"tls.clientCertificate: expired at {isoformat(expires)}")
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "clientCertificate": certificate_pem,
        "clientKey": box.seal(pkcs8.decode()),
        "clientCertificateExpiresAt": isoformat(expires),
    }


def _public(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def shown_tls(stored: dict | None) -> dict | None:
    """What answers show of a stored `tls`: the certificates and the expiry, never the key."""
    if not stored:
        return None
    return {name: stored[name] for name in SHOWN if name in stored}
