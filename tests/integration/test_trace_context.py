"""A producer's trace reaches the receiver: the `traceparent` sent with `POST /events` is what
every attempt carries (retries, the sweep's re-sends, redeliveries), and an event without one
still arrives with a trace of its own. Spans are not exported here (no OTLP endpoint)."""

from __future__ import annotations

from app import create_app
from shared.tracing import valid_traceparent
from tests.api.test_console import sign_in
from tests.deliveries import WAIT, deliveries_of, header, wait_until
from tests.helpers import assert_problem, connection_event

SERVICE_ENV = {"WEBHOOK_RETRY_COUNTDOWN": "0.3"}
PRODUCER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
EVENT = {"type": "ConnectionUpdated", "data": connection_event()}


def publish(client, tenant, traceparent: str | None = None, path: str = "/cloud-agent/events"):
    headers = {**tenant.headers, **({"traceparent": traceparent} if traceparent else {})}
    body = {"events": [EVENT, EVENT]} if path.endswith("/batch") else EVENT
    published = client.post(path, json=body, headers=headers)
    assert published.status_code == 202, published.json
    return published.json


def traceparents(receiver, path: str, count: int) -> list[str]:
    return [header(request, "traceparent") for request in receiver.wait_for(path, count, WAIT)]


def test_every_attempt_carries_the_producers_trace(client, tenant, receiver, worker):
    receiver.behave("/flaky", statuses=[500, 503], then=200)
    tenant.add_webhook(receiver.url("/flaky"))
    event = publish(client, tenant, PRODUCER)
    assert traceparents(receiver, "/flaky", 3) == [PRODUCER] * 3
    # The console shows it among the headers sent.
    [delivery] = deliveries_of(client, tenant.headers, event["id"])
    sign_in(client, "tenant", tenant.api_key)
    page = client.get(f"/cloud-agent/console/deliveries/{delivery['id']}")
    assert f'<th scope="row">traceparent</th><td>{PRODUCER}</td>' in page.get_data(as_text=True)


def test_a_redelivery_carries_it_again(client, tenant, receiver, worker):
    tenant.add_webhook(receiver.url("/again"))
    event = publish(client, tenant, PRODUCER)
    delivery = wait_until(
        lambda: [
            d
            for d in deliveries_of(client, tenant.headers, event["id"])
            if d["status"] == "delivered"
        ],
        "the first delivery",
    )[0]
    redelivered = client.post(
        f"/cloud-agent/events/deliveries/{delivery['id']}/redeliver", headers=tenant.headers
    )
    assert redelivered.status_code == 202
    assert traceparents(receiver, "/again", 2) == [PRODUCER] * 2


def test_the_sweeps_resend_carries_it(settings, tenant, receiver, worker, beat):
    def broker_down(deliveries):
        raise ConnectionError("the broker is down")

    # An API process that cannot reach the broker: the sweep sends the task later.
    offline = create_app(settings, dispatch=broker_down).test_client()
    tenant.add_webhook(receiver.url("/swept"))
    publish(offline, tenant, PRODUCER)
    assert traceparents(receiver, "/swept", 1) == [PRODUCER]


def test_a_batch_is_one_trace_and_a_bad_traceparent_starts_another(
    client, tenant, receiver, worker
):
    tenant.add_webhook(receiver.url("/batch"))
    publish(client, tenant, PRODUCER, path="/cloud-agent/events/batch")
    assert traceparents(receiver, "/batch", 2) == [PRODUCER] * 2

    tenant.add_webhook(receiver.url("/bad"))
    event = publish(client, tenant, "00-not-a-trace-01")
    [sent] = traceparents(receiver, "/bad", 1)
    assert valid_traceparent(sent) == sent and sent.split("-")[1] == event["id"].replace("-", "")


def test_without_one_each_event_is_a_trace_of_its_own(client, tenant, receiver, worker):
    tenant.add_webhook(receiver.url("/new"))
    first, second = publish(client, tenant), publish(client, tenant)
    sent = traceparents(receiver, "/new", 2)
    assert all(valid_traceparent(value) == value for value in sent)
    trace_ids = {value.split("-")[1] for value in sent}
    assert trace_ids == {first["id"].replace("-", ""), second["id"].replace("-", "")}


def test_a_webhook_cannot_set_its_own_traceparent(client, tenant):
    refused = client.post(
        "/cloud-agent/events/webhooks",
        json={"url": "http://example.com/x", "customHeaders": {"Traceparent": PRODUCER}},
        headers=tenant.headers,
    )
    body = assert_problem(refused, 400, "BadRequest")
    assert "is set by the service" in body["detail"]
