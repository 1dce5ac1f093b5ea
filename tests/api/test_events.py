"""POST /events: validation of the four event types, the envelope, and what is stored."""

import json
import re
import uuid

import pytest
from sqlalchemy import text

from tests.helpers import admin_headers, assert_problem, connection_event

EVENTS = "/cloud-agent/events"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

VALID = {
    "ConnectionUpdated": connection_event(),
    "IssueCredentialRecordUpdated": {
        "recordId": "rec-1",
        "role": "Issuer",
        "protocolState": "OfferSent",
        "extra": [1, 2],
    },
    "PresentationUpdated": {"presentationId": "p-1", "role": "Verifier", "status": "RequestSent"},
    "DIDStatusUpdated": {"did": "did:prism:abc", "status": "PUBLISHED"},
}


def counts(database):
    with database.session() as session:
        events = session.execute(text("SELECT count(*) FROM events")).scalar()
        deliveries = session.execute(text("SELECT count(*) FROM deliveries")).scalar()
    return events, deliveries


@pytest.mark.parametrize("event_type", list(VALID))
def test_each_type_is_accepted_with_the_envelope(client, tenant, database, event_type):
    tenant.add_webhook("http://localhost:9095")
    response = tenant.publish(event_type, VALID[event_type])
    assert response.status_code == 202
    assert response.content_type == "application/json"
    # Compact JSON with the Identus key order; data passes through unchanged.
    assert b": " not in response.data and b", " not in response.data
    envelope = json.loads(response.data)
    assert list(envelope) == ["type", "id", "ts", "data", "walletId"]
    assert envelope["type"] == event_type
    assert uuid.UUID(envelope["id"]).version == 4
    assert TS.match(envelope["ts"])
    assert envelope["data"] == VALID[event_type]
    assert envelope["walletId"] == tenant.wallet_id
    assert counts(database) == (1, 1)


def test_the_stored_body_is_the_answer_byte_for_byte_whatever_the_text(client, tenant, database):
    """Quotes, backslashes, an escape written as text, line and paragraph separators, non-Latin
    letters and emoji reach the database (and so every receiver) exactly as the API answered."""
    tenant.add_webhook("http://localhost:9095")
    awkward = 'say "hi" \\ C:\\dir \\u0000 \u2028\u2029 ünïcødé 日本語 🎉 </script>'
    data = {**connection_event(), "label": awkward, "goalCode": "\t\n"}
    response = tenant.publish("ConnectionUpdated", data)
    assert response.status_code == 202
    assert json.loads(response.data)["data"] == data
    with database.session() as session:
        stored = session.execute(text("SELECT body FROM events")).scalar()
    assert stored.encode() == response.data


@pytest.mark.parametrize(
    "event_type, data",
    [
        ("Nope", {}),
        ("ConnectionUpdated", {**connection_event(), "connectionId": "not-a-uuid"}),
        ("ConnectionUpdated", {k: v for k, v in connection_event().items() if k != "role"}),
        ("ConnectionUpdated", {**connection_event(), "role": "Holder"}),
        ("ConnectionUpdated", {**connection_event(), "state": "Done"}),
        ("IssueCredentialRecordUpdated", {"role": "Issuer", "protocolState": "OfferSent"}),
        ("IssueCredentialRecordUpdated", {"recordId": "r", "role": "Issuer"}),
        ("PresentationUpdated", {"presentationId": "p", "role": "Prover", "status": "Nope"}),
        ("DIDStatusUpdated", {"did": "prism:abc", "status": "PUBLISHED"}),
        ("DIDStatusUpdated", {"did": "did:prism:abc", "status": "Published"}),
    ],
)
def test_invalid_events_are_400_and_nothing_is_stored(client, tenant, database, event_type, data):
    tenant.add_webhook("http://localhost:9095")
    response = tenant.publish(event_type, data)
    assert_problem(response, 400, "BadRequest")
    assert counts(database) == (0, 0)


@pytest.mark.parametrize("body", [{}, {"type": "ConnectionUpdated"}, {"data": {}}, {"type": 1}])
def test_missing_fields_are_400(client, tenant, database, body):
    response = client.post(EVENTS, json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert counts(database) == (0, 0)


def test_did_events_other_than_published_are_stored_and_sent_to_no_one(client, tenant, database):
    tenant.add_webhook("http://localhost:9095")
    for status in ("CREATED", "PUBLICATION_PENDING"):
        response = tenant.publish("DIDStatusUpdated", {"did": "did:prism:x", "status": status})
        assert response.status_code == 202
    assert counts(database) == (2, 0)


def test_the_operator_publishes_for_a_named_wallet(client, tenant, database):
    tenant.add_webhook("http://localhost:9095")
    body = {"walletId": tenant.wallet_id, "type": "ConnectionUpdated", "data": connection_event()}
    response = client.post(EVENTS, json=body, headers=admin_headers())
    assert response.status_code == 202
    assert response.json["walletId"] == tenant.wallet_id
    no_wallet = client.post(EVENTS, json={**body, "walletId": None}, headers=admin_headers())
    assert no_wallet.status_code == 400
    missing = client.post(
        EVENTS, json={**body, "walletId": str(uuid.uuid4())}, headers=admin_headers()
    )
    assert_problem(missing, 404, "NotFound")
    assert counts(database) == (1, 1)


def test_a_tenant_cannot_publish_for_another_wallet(client, tenant, database):
    from tests.helpers import onboard_tenant

    other = onboard_tenant(client, "other")
    body = {"walletId": other.wallet_id, "type": "ConnectionUpdated", "data": connection_event()}
    response = client.post(EVENTS, json=body, headers=tenant.headers)
    assert response.status_code == 202
    assert response.json["walletId"] == tenant.wallet_id  # walletId is the operator's field


def test_publishing_needs_credentials(client, tenant):
    body = {"type": "ConnectionUpdated", "data": connection_event()}
    assert_problem(
        client.post(EVENTS, json=body), 401, "error:AuthenticationError:InvalidCredentials"
    )
    wrong_admin = client.post(EVENTS, json=body, headers={"x-admin-api-key": "nope"})
    assert_problem(wrong_admin, 401, "error:AuthenticationError:InvalidCredentials")


def test_a_broker_outage_is_no_error(base_env, database):
    """Tasks that cannot be sent are left for the sweep; the event is accepted."""
    from app import create_app
    from shared.settings import load_settings

    def broker_down(ids):
        raise ConnectionError("broker unreachable")

    settings = load_settings(base_env)
    client = create_app(settings, dispatch=broker_down).test_client()
    from tests.helpers import onboard_tenant

    tenant = onboard_tenant(client)
    tenant.add_webhook("http://localhost:9095")
    response = tenant.publish("ConnectionUpdated", connection_event())
    assert response.status_code == 202
    with database.session() as session:
        row = session.execute(text("SELECT status, enqueued_at FROM deliveries")).one()
    assert row.status == "pending" and row.enqueued_at is None  # marked for the sweep


def test_a_database_outage_is_503(base_env):
    from app import create_app
    from shared.settings import load_settings

    settings = load_settings(
        {**base_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "API_KEY_ENABLED": "0"}
    )
    client = create_app(settings, dispatch=lambda ids: None).test_client()
    response = client.post(EVENTS, json={"type": "ConnectionUpdated", "data": connection_event()})
    assert_problem(response, 503, "ServiceUnavailable")
