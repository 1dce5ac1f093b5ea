"""Standard Webhooks signatures on every attempt, verified by the reference library."""

import pytest
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tests.helpers import connection_event


def test_every_attempt_is_signed_and_tampering_is_detected(client, tenant, receiver, worker):
    receiver.behave("/signed", statuses=[500], then=200)
    created = tenant.add_webhook(receiver.url("/signed"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    attempts = receiver.wait_for("/signed", 2)
    assert len(attempts) == 2
    verifier = Verifier(created["secret"])
    for attempt in attempts:
        assert attempt.body == published.data
        assert attempt.headers["webhook-id"] == published.json["id"]
        assert verifier.verify(attempt.body, attempt.headers) == published.json
    tampered = attempts[0].body.replace(b"Inviter", b"Invitee")
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, attempts[0].headers)
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "A" * 32).verify(attempts[0].body, attempts[0].headers)


def test_old_and_new_secrets_both_verify_during_rotation(client, tenant, receiver, worker):
    created = tenant.add_webhook(receiver.url("/rotated"))
    rotated = client.post(
        f"/cloud-agent/events/webhooks/{created['id']}/rotate-secret", headers=tenant.headers
    ).json
    tenant.publish("ConnectionUpdated", connection_event())
    (delivery,) = receiver.wait_for("/rotated", 1)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    Verifier(created["secret"]).verify(delivery.body, delivery.headers)
    Verifier(rotated["secret"]).verify(delivery.body, delivery.headers)
