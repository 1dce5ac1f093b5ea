"""Retries as a receiver sees them: how many requests arrive, with which bytes, and what the
delivery log then says. Every test runs a real worker against the real receiver.

The module runs with a 1 s retry countdown (long enough to act between two attempts, short
enough to keep the file fast) and a 1 s request timeout (so timeouts are quick to provoke).
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from shared.models import Event
from tests.deliveries import WAIT, deliveries_of, detail, header, wait_until
from tests.helpers import admin_headers, connection_event
from tools.processes import free_port

SERVICE_ENV = {"WEBHOOK_RETRY_COUNTDOWN": "1", "WEBHOOK_TIMEOUT": "1"}
FINISHED = ("delivered", "failed", "cancelled")


def only_delivery(client, headers, event_id: str, statuses=FINISHED) -> dict:
    """The event's single delivery, once its status is one of `statuses`."""

    def probe():
        rows = deliveries_of(client, headers, event_id)
        assert len(rows) <= 1, rows
        return rows[0] if rows and rows[0]["status"] in statuses else None

    return wait_until(probe, f"the delivery of event {event_id} to reach {statuses}")


def presentation_event(status: str = "RequestSent") -> dict:
    return {"presentationId": str(uuid.uuid4()), "role": "Verifier", "status": status}


def test_two_failures_then_success_take_exactly_three_identical_requests(
    client, tenant, receiver, worker
):
    receiver.behave("/flaky", statuses=[500, 500], then=200)
    hook = tenant.add_webhook(receiver.url("/flaky"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    event_id = published.json["id"]

    arrived = receiver.wait_for("/flaky", 3, timeout=WAIT)
    assert len(arrived) == 3
    assert [r.body for r in arrived] == [published.data] * 3
    assert [header(r, "webhook-id") for r in arrived] == [event_id] * 3

    delivery = only_delivery(client, tenant.headers, event_id)
    assert delivery["status"] == "delivered"
    assert delivery["webhookId"] == hook["id"]
    assert (delivery["round"], delivery["attempts"]) == (1, 3)
    assert delivery["lastStatusCode"] == 200

    # Delivered means done: no fourth request, even well past another countdown.
    time.sleep(2.0)
    assert len(receiver.at("/flaky")) == 3


def test_a_receiver_that_keeps_failing_gets_three_requests_then_the_delivery_fails(
    client, tenant, receiver, worker
):
    receiver.behave("/down", then=500)
    tenant.add_webhook(receiver.url("/down"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202

    assert len(receiver.wait_for("/down", 3, timeout=WAIT)) == 3
    delivery = only_delivery(client, tenant.headers, published.json["id"])
    assert delivery["status"] == "failed"
    assert delivery["lastStatusCode"] == 500

    shown = detail(client, tenant.headers, delivery["id"])
    assert shown["status"] == "failed"
    log = shown["attemptLog"]
    assert [(a["round"], a["number"]) for a in log] == [(1, 1), (1, 2), (1, 3)]
    assert [a["statusCode"] for a in log] == [500, 500, 500]
    assert all(a["error"] is None and a["durationMs"] >= 0 for a in log)
    assert all(a["startedAt"].endswith("Z") for a in log)

    def failure_lines():
        return [
            line
            for line in worker.log().splitlines()
            if "delivery failed" in line and f"delivery={delivery['id']}" in line
        ]

    wait_until(failure_lines, "the worker's failure line")
    time.sleep(2.0)  # a late duplicate attempt or log line would show up by now
    assert len(receiver.at("/down")) == 3
    lines = failure_lines()
    assert len(lines) == 1, lines
    assert "after 3 attempts" in lines[0]
    assert "HTTP 500" in lines[0]


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(client, tenant, receiver, worker):
    receiver.behave("/moved", then=302, location=receiver.url("/elsewhere"))
    tenant.add_webhook(receiver.url("/moved"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202

    assert len(receiver.wait_for("/moved", 3, timeout=WAIT)) == 3
    delivery = only_delivery(client, tenant.headers, published.json["id"])
    assert delivery["status"] == "failed"
    log = detail(client, tenant.headers, delivery["id"])["attemptLog"]
    assert [a["statusCode"] for a in log] == [302, 302, 302]
    assert receiver.at("/elsewhere") == []
    assert len(receiver.at("/moved")) == 3


def test_a_receiver_slower_than_the_timeout_gets_three_timed_out_attempts(
    client, tenant, receiver, worker
):
    receiver.behave("/slow", then=200, delay=5.0)  # far beyond WEBHOOK_TIMEOUT=1
    tenant.add_webhook(receiver.url("/slow"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202

    delivery = only_delivery(client, tenant.headers, published.json["id"])
    assert delivery["status"] == "failed"
    assert "timeout" in delivery["lastError"].lower()
    log = detail(client, tenant.headers, delivery["id"])["attemptLog"]
    assert [a["number"] for a in log] == [1, 2, 3]
    assert [a["statusCode"] for a in log] == [None, None, None]
    assert all("timeout" in a["error"].lower() for a in log), log
    # Each attempt gave up at the timeout instead of waiting for the 5 s answer.
    assert all(900 <= a["durationMs"] < 4000 for a in log), log
    assert len(receiver.at("/slow")) == 3


def test_a_refused_connection_is_three_failed_attempts(client, tenant, worker):
    tenant.add_webhook(f"http://127.0.0.1:{free_port()}/nobody-home")
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202

    delivery = only_delivery(client, tenant.headers, published.json["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    log = detail(client, tenant.headers, delivery["id"])["attemptLog"]
    assert [a["number"] for a in log] == [1, 2, 3]
    assert [a["statusCode"] for a in log] == [None, None, None]
    assert all(a["error"] for a in log), log
    # Refused at once: no attempt waited for the timeout.
    assert all(a["durationMs"] < 900 for a in log), log


@pytest.mark.parametrize(
    ("host", "words"),
    [("127.0.0.1:{free_port}", ("connection", "refused")), ("no-such-host.invalid", ("dns",))],
    ids=["refused", "dns"],
)
def test_a_connection_failure_is_recorded_as_what_it_is(client, tenant, worker, host, words):
    tenant.add_webhook(f"http://{host.format(free_port=free_port())}/hook")
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    [delivery] = deliveries_of(client, tenant.headers, published.json["id"])

    def first_attempt():
        return detail(client, tenant.headers, delivery["id"])["attemptLog"][:1]

    error = wait_until(first_attempt, "the first attempt")[0]["error"]
    assert all(word in error.lower() for word in words), error
    assert "timeout" not in error.lower(), error


def test_deleting_a_webhook_cancels_its_pending_retries(client, tenant, receiver, worker):
    receiver.behave("/doomed", then=500)
    hook = tenant.add_webhook(receiver.url("/doomed"))
    published = tenant.publish("ConnectionUpdated", connection_event())
    assert published.status_code == 202
    event_id = published.json["id"]

    assert len(receiver.wait_for("/doomed", 1, timeout=WAIT)) >= 1
    # The first attempt is recorded and the retry waits out its countdown: delete now.
    waiting = only_delivery(client, tenant.headers, event_id, statuses=("pending",))
    assert waiting["attempts"] == 1
    deleted = client.delete(f"/cloud-agent/events/webhooks/{hook['id']}", headers=tenant.headers)
    assert deleted.status_code == 200

    time.sleep(3.0)  # the retry was due after 1 s
    assert len(receiver.at("/doomed")) == 1
    seen_by_admin = deliveries_of(client, admin_headers(), event_id)
    assert len(seen_by_admin) == 1
    assert seen_by_admin[0]["status"] == "cancelled"
    assert seen_by_admin[0]["attempts"] == 1
    shown = detail(client, admin_headers(), seen_by_admin[0]["id"])
    assert shown["status"] == "cancelled"
    assert [a["statusCode"] for a in shown["attemptLog"]] == [500]


def test_did_status_is_notified_only_once_published(client, tenant, receiver, database, worker):
    tenant.add_webhook(receiver.url("/dids"))
    did = f"did:prism:{uuid.uuid4().hex}"
    quiet = []
    for status in ("CREATED", "PUBLICATION_PENDING"):
        answer = tenant.publish("DIDStatusUpdated", {"did": did, "status": status})
        assert answer.status_code == 202
        assert answer.json["data"]["status"] == status
        quiet.append(answer)
    published = tenant.publish("DIDStatusUpdated", {"did": did, "status": "PUBLISHED"})
    assert published.status_code == 202

    arrived = receiver.wait_for("/dids", 1, timeout=WAIT)
    assert [r.body for r in arrived] == [published.data]
    delivery = only_delivery(client, tenant.headers, published.json["id"])
    assert delivery["status"] == "delivered"

    time.sleep(1.0)  # the unpublished states were sent first: they would be here by now
    assert [r.body for r in receiver.at("/dids")] == [published.data]
    for answer in quiet:
        assert deliveries_of(client, tenant.headers, answer.json["id"]) == []
        assert deliveries_of(client, admin_headers(), answer.json["id"]) == []
        # Accepted means stored: the event itself is kept, byte for byte.
        with database.session() as session:
            stored = session.scalar(
                select(Event.body).where(Event.id == uuid.UUID(answer.json["id"]))
            )
        assert stored == answer.data.decode()


def test_an_event_type_filter_lets_through_only_the_listed_types(client, tenant, receiver, worker):
    filtered = tenant.add_webhook(
        receiver.url("/presentations"), eventTypes=["PresentationUpdated"]
    )
    assert filtered["eventTypes"] == ["PresentationUpdated"]
    tenant.add_webhook(receiver.url("/everything"))

    presentation = tenant.publish("PresentationUpdated", presentation_event())
    connection = tenant.publish("ConnectionUpdated", connection_event())
    assert presentation.status_code == connection.status_code == 202

    everything = receiver.wait_for("/everything", 2, timeout=WAIT)
    assert sorted(r.body for r in everything) == sorted([presentation.data, connection.data])
    assert [r.body for r in receiver.wait_for("/presentations", 1, timeout=WAIT)] == [
        presentation.data
    ]
    # The connection event is fully delivered to its one target: nothing else is coming.
    connection_deliveries = deliveries_of(client, tenant.headers, connection.json["id"])
    assert len(connection_deliveries) == 1
    only_delivery(client, tenant.headers, connection.json["id"])
    time.sleep(1.0)
    assert [r.body for r in receiver.at("/presentations")] == [presentation.data]
