"""Idempotency-Key on POST /events and /events/batch, and batch publishing: what a producer that
retries, or that settles many records at once, sees."""

import threading
import uuid

from sqlalchemy import text

from shared.services.retention import purge
from tests.helpers import admin_headers, assert_problem, connection_event, onboard_tenant

EVENTS = "/cloud-agent/events"
BATCH = "/cloud-agent/events/batch"
KEY_REUSED = "error:IdempotencyError:KeyReused"


def counts(database):
    with database.session() as session:
        events = session.execute(text("SELECT count(*) FROM events")).scalar()
        deliveries = session.execute(text("SELECT count(*) FROM deliveries")).scalar()
    return events, deliveries


def _publish(tenant, body: dict, key: str | None = None, path: str = EVENTS):
    headers = {**tenant.headers, **({"Idempotency-Key": key} if key else {})}
    return tenant.client.post(path, json=body, headers=headers)


def _event(state="InvitationGenerated", connection_id=None) -> dict:
    data = connection_event(state)
    if connection_id:
        data["connectionId"] = connection_id
    return {"type": "ConnectionUpdated", "data": data}


def test_a_repeat_with_the_same_key_answers_the_original_and_stores_nothing(tenant, database):
    tenant.add_webhook("http://localhost:9095")
    body = _event()
    first = _publish(tenant, body, "order-42")
    again = _publish(tenant, body, "order-42")
    assert first.status_code == again.status_code == 202
    assert again.data == first.data  # same id, same ts, byte for byte
    assert counts(database) == (1, 1)


def test_the_key_is_scoped_to_the_callers_wallet(client, tenant, database):
    other = onboard_tenant(client, "other")
    body = _event()
    first = _publish(tenant, body, "shared-key")
    second = _publish(other, body, "shared-key")
    assert first.status_code == second.status_code == 202
    assert first.json["id"] != second.json["id"]
    assert counts(database)[0] == 2


def test_the_same_key_with_another_body_is_a_409(tenant, database):
    _publish(tenant, _event("InvitationGenerated"), "k-1")
    response = _publish(tenant, _event("ConnectionRequestSent"), "k-1")
    body = assert_problem(response, 409, KEY_REUSED)
    assert "different request" in body["detail"]
    assert counts(database)[0] == 1


def test_concurrent_repeats_store_exactly_one_event(app, tenant, database):
    tenant.add_webhook("http://localhost:9095")
    body = _event()
    threads, answers = 8, []
    barrier = threading.Barrier(threads)

    def publish():
        client = app.test_client()
        barrier.wait()
        headers = {**tenant.headers, "Idempotency-Key": "at-once"}
        answers.append(client.post(EVENTS, json=body, headers=headers))

    workers = [threading.Thread(target=publish) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [answer.status_code for answer in answers] == [202] * threads
    assert len({answer.data for answer in answers}) == 1
    assert counts(database) == (1, 1)


def test_a_key_older_than_the_ttl_is_a_new_key_and_the_purge_removes_it(tenant, database, settings):
    body = _event()
    first = _publish(tenant, body, "old-key")
    with database.transaction() as session:
        session.execute(
            text("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")
            if not database.is_sqlite
            else text("UPDATE idempotency_keys SET created_at = datetime(created_at, '-25 hours')")
        )
    again = _publish(tenant, body, "old-key")
    assert again.status_code == 202
    assert again.json["id"] != first.json["id"]
    assert counts(database)[0] == 2
    with database.transaction() as session:
        session.execute(
            text("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")
            if not database.is_sqlite
            else text("UPDATE idempotency_keys SET created_at = datetime(created_at, '-25 hours')")
        )
    purge(database, settings)
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM idempotency_keys")).scalar() == 0


def test_a_malformed_key_is_a_400(tenant, database):
    for key in ("has space", "x" * 256, "é"):
        headers = {**tenant.headers, "Idempotency-Key": key}
        response = tenant.client.post(EVENTS, json=_event(), headers=headers)
        assert_problem(response, 400, "BadRequest")
    assert counts(database)[0] == 0


def test_a_batch_answers_the_envelopes_in_order(tenant, database):
    tenant.add_webhook("http://localhost:9095")
    states = ["InvitationGenerated", "ConnectionRequestReceived", "ConnectionResponseSent"]
    events = [_event(state, connection_id=str(uuid.uuid4())) for state in states]
    response = _publish(tenant, {"events": events}, path=BATCH)
    assert response.status_code == 202
    envelopes = response.json["events"]
    assert [e["data"]["state"] for e in envelopes] == states
    assert [e["data"]["connectionId"] for e in envelopes] == [
        e["data"]["connectionId"] for e in events
    ]
    assert all(e["walletId"] == tenant.wallet_id for e in envelopes)
    assert [e["ts"] for e in envelopes] == sorted(e["ts"] for e in envelopes)
    assert len({e["id"] for e in envelopes}) == 3
    assert counts(database) == (3, 3)


def test_a_batch_with_one_bad_event_stores_nothing_and_names_its_index(tenant, database):
    tenant.add_webhook("http://localhost:9095")
    events = [_event() for _ in range(5)]
    events[3]["data"]["state"] = "NotAState"
    response = _publish(tenant, {"events": events}, path=BATCH)
    body = assert_problem(response, 400, "BadRequest")
    assert "3" in body["detail"] and "state" in body["detail"]
    assert counts(database) == (0, 0)


def test_a_batch_of_101_events_is_a_400(tenant, database):
    response = _publish(tenant, {"events": [_event() for _ in range(101)]}, path=BATCH)
    body = assert_problem(response, 400, "BadRequest")
    assert "events" in body["detail"]
    assert counts(database) == (0, 0)


def test_the_operator_names_the_wallet_of_each_event(client, tenant, database):
    good = {**_event(), "walletId": tenant.wallet_id}
    response = client.post(BATCH, json={"events": [good, _event()]}, headers=admin_headers())
    body = assert_problem(response, 400, "BadRequest")
    assert body["detail"].startswith("events[1].walletId")
    response = client.post(BATCH, json={"events": [good, good]}, headers=admin_headers())
    assert response.status_code == 202
    assert counts(database)[0] == 2


def test_a_batch_repeated_with_its_key_is_answered_again(tenant, database):
    tenant.add_webhook("http://localhost:9095")
    batch = {"events": [_event() for _ in range(4)]}
    first = _publish(tenant, batch, "batch-7", path=BATCH)
    again = _publish(tenant, batch, "batch-7", path=BATCH)
    assert first.status_code == again.status_code == 202
    assert again.data == first.data
    assert counts(database) == (4, 4)
    other = _publish(tenant, {"events": batch["events"][:3]}, "batch-7", path=BATCH)
    assert_problem(other, 409, KEY_REUSED)
