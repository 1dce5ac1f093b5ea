"""Receivers that demand more than a header, against a real worker: an HTTPS receiver that
requires a client certificate from its own CA, HTTP Basic, Ed25519 (`v1a`) signatures, and
the test button.

`v1a` signatures are verified with PyNaCl (libsodium), an implementation independent of the
`cryptography` package the service signs with."""

import base64
import ssl

import pytest
import trustme
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from standardwebhooks import Webhook as Verifier

from tests.deliveries import deliveries_of, detail, header, wait_until
from tests.helpers import connection_event
from tests.receiver import Receiver

ENDED = ("delivered", "failed")
GLOBAL_WEBHOOK = {}  # the global webhook receives every wallet's events here


@pytest.fixture(autouse=True)
def _running(worker):
    """A real worker process."""


@pytest.fixture(scope="module")
def authorities():
    """The receiver's server CA, the CA it trusts for client certificates, and another."""
    return trustme.CA(), trustme.CA(), trustme.CA()


@pytest.fixture
def mtls_receiver(authorities):
    server_ca, client_ca, _ = authorities
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(context)
    client_ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = Receiver(tls=context)
    yield server
    server.close()


def _tls(issuer: trustme.CA, server_ca: trustme.CA) -> dict:
    certificate = issuer.issue_cert("webhooks@acme.example")
    return {
        "clientCertificate": certificate.cert_chain_pems[0].bytes().decode(),
        "clientKey": certificate.private_key_pem.bytes().decode(),
        "caCertificate": server_ca.cert_pem.bytes().decode(),
    }


def _ended(client, tenant, event_id: str, count: int) -> dict[str, dict]:
    """The event's deliveries by URL, once all `count` have ended."""

    def settled():
        found = deliveries_of(client, tenant.headers, event_id)
        if len(found) < count or any(d["status"] not in ENDED for d in found):
            return None
        return {d["url"]: d for d in found}

    return wait_until(settled, f"{count} deliveries to end")


def test_an_https_receiver_accepts_only_the_webhook_with_its_client_certificate(
    client, tenant, mtls_receiver, authorities
):
    server_ca, client_ca, other_ca = authorities
    tenant.add_webhook(mtls_receiver.url("/with"), tls=_tls(client_ca, server_ca))
    tenant.add_webhook(mtls_receiver.url("/other-ca"), tls=_tls(other_ca, server_ca))
    only_ca = {"caCertificate": server_ca.cert_pem.bytes().decode()}
    tenant.add_webhook(mtls_receiver.url("/without"), tls=only_ca)
    published = tenant.publish("ConnectionUpdated", connection_event())

    ended = _ended(client, tenant, published.json["id"], 3)
    assert ended[mtls_receiver.url("/with")]["status"] == "delivered"
    for path in ("/other-ca", "/without"):
        refused = ended[mtls_receiver.url(path)]
        assert refused["status"] == "failed"
        attempts = detail(client, tenant.headers, refused["id"])["attemptLog"]
        assert len(attempts) == 3
        assert all(a["statusCode"] is None and "TLS" in a["error"] for a in attempts), attempts
    # Only the webhook with a certificate from the receiver's CA got past the handshake.
    assert [r.path for r in mtls_receiver.requests] == ["/with"]
    assert mtls_receiver.requests[0].body == published.data
    assert mtls_receiver.refused_handshakes >= 6


def test_the_private_ca_alone_is_trusted_for_its_receiver(client, tenant, mtls_receiver):
    # A CA that did not issue the receiver's certificate: the service refuses the receiver.
    stranger = trustme.CA()
    tenant.add_webhook(
        mtls_receiver.url("/stranger"), tls={"caCertificate": stranger.cert_pem.bytes().decode()}
    )
    published = tenant.publish("ConnectionUpdated", connection_event())
    (delivery,) = _ended(client, tenant, published.json["id"], 1).values()
    attempts = detail(client, tenant.headers, delivery["id"])["attemptLog"]
    assert attempts[0]["error"] == "TLS error: CERTIFICATE_VERIFY_FAILED"
    assert mtls_receiver.requests == []


def test_basic_authentication_reaches_the_receiver(client, tenant, receiver):
    expected = "Basic " + base64.b64encode(b"acme:pa ss~word").decode()
    receiver.behave("/basic", check=lambda h: None if header_of(h) == expected else 401)
    tenant.add_webhook(
        receiver.url("/basic"), auth={"type": "basic", "username": "acme", "password": "pa ss~word"}
    )
    published = tenant.publish("ConnectionUpdated", connection_event())
    (request,) = receiver.wait_for("/basic", 1)
    assert header(request, "Authorization") == expected
    (delivery,) = _ended(client, tenant, published.json["id"], 1).values()
    assert delivery["status"] == "delivered"


def header_of(headers: dict) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get("authorization")


def _verify_v1a(public_key: str, request) -> list[str]:
    """The v1a signatures of a request that the key verifies (PyNaCl), and raises on none."""
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    signed = f"{header(request, 'webhook-id')}.{header(request, 'webhook-timestamp')}.".encode()
    verified = []
    for part in header(request, "webhook-signature").split():
        version, _, signature = part.partition(",")
        assert version == "v1a", part
        try:
            key.verify(signed + request.body, base64.b64decode(signature))
        except BadSignatureError:
            continue
        verified.append(part)
    return verified


def test_v1a_signatures_verify_with_the_public_key_and_rotation_signs_with_both(
    client, tenant, receiver
):
    receiver.behave("/ed25519", statuses=[500], then=200)
    created = tenant.add_webhook(receiver.url("/ed25519"), signatureScheme="v1a")
    assert "secret" not in created  # a private key is never shown
    assert created["signatureScheme"] == "v1a"
    assert created["publicKey"].startswith("whpk_")
    published = tenant.publish("ConnectionUpdated", connection_event())
    attempts = receiver.wait_for("/ed25519", 2)
    for attempt in attempts:  # every attempt, the retry included
        assert attempt.body == published.data
        assert len(_verify_v1a(created["publicKey"], attempt)) == 1
    tampered = attempts[0]
    tampered.body = tampered.body.replace(b"Inviter", b"Invitee")
    assert _verify_v1a(created["publicKey"], tampered) == []

    rotated = client.post(
        f"/cloud-agent/events/webhooks/{created['id']}/rotate-secret", headers=tenant.headers
    ).json
    assert rotated["publicKey"] != created["publicKey"] and "secret" not in rotated
    tenant.publish("ConnectionUpdated", connection_event())
    during_grace = receiver.wait_for("/ed25519", 3)[-1]
    assert len(header(during_grace, "webhook-signature").split()) == 2
    assert len(_verify_v1a(created["publicKey"], during_grace)) == 1
    assert len(_verify_v1a(rotated["publicKey"], during_grace)) == 1
    listed = client.get("/cloud-agent/events/webhooks", headers=tenant.headers).json
    assert listed["contents"][0]["publicKey"] == rotated["publicKey"]


def test_the_test_event_goes_to_that_webhook_alone_signed_logged_and_redeliverable(
    client, tenant, receiver, global_receiver
):
    tested = tenant.add_webhook(receiver.url("/tested"))
    tenant.add_webhook(receiver.url("/sibling"))
    sent = client.post(
        f"/cloud-agent/events/webhooks/{tested['id']}/test",
        json={"type": "PresentationUpdated"},
        headers=tenant.headers,
    )
    assert sent.status_code == 202, sent.json
    assert sent.json["webhookId"] == tested["id"] and sent.json["status"] == "pending"
    (request,) = receiver.wait_for("/tested", 1)
    event = Verifier(tested["secret"]).verify(request.body, request.headers)
    assert event["type"] == "PresentationUpdated"
    assert event["data"]["role"] == "Verifier" and event["walletId"] == tenant.wallet_id
    assert event["id"] == sent.json["eventId"]

    default = client.post(
        f"/cloud-agent/events/webhooks/{tested['id']}/test", headers=tenant.headers
    )
    assert default.status_code == 202
    second = receiver.wait_for("/tested", 2)[-1]
    assert Verifier(tested["secret"]).verify(second.body, second.headers)["type"] == "WebhookTest"

    def logged():
        found = detail(client, tenant.headers, sent.json["id"])
        return found if found["status"] == "delivered" else None

    assert wait_until(logged, "the test delivery in the log")["attemptLog"][0]["statusCode"] == 200
    redelivered = client.post(
        f"/cloud-agent/events/deliveries/{sent.json['id']}/redeliver", headers=tenant.headers
    )
    assert redelivered.status_code == 202
    again = receiver.wait_for("/tested", 3)[-1]
    assert again.body == request.body
    assert receiver.at("/sibling") == []
    tests = {sent.json["eventId"], default.json["eventId"]}
    published = tenant.publish("ConnectionUpdated", connection_event()).json
    # A published event reaches the sibling and the global webhook; the test events did not.
    wait_until(
        lambda: any(_event_id(r) == published["id"] for r in global_receiver.at("/global")),
        "the global webhook to get a published event",
    )
    assert len(receiver.wait_for("/sibling", 1)) == 1
    assert [r for r in global_receiver.requests if _event_id(r) in tests] == []


def _event_id(request) -> str:
    return header(request, "webhook-id")
