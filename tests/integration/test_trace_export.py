"""With OTEL_EXPORTER_OTLP_ENDPOINT set, publishing and each attempt are spans, exported over
OTLP/HTTP to a real endpoint (in this process) by the API and by a real worker; the receiver's
`traceparent` names the attempt's span, in the producer's trace."""

from __future__ import annotations

import pytest

from tests.deliveries import WAIT, header
from tests.helpers import connection_event
from tests.otlp_collector import OtlpCollector
from tools.processes import free_port

PORT = free_port()
SERVICE_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{PORT}",
    "OTEL_SERVICE_NAME": "webhooks-under-test",
    # The worker's spans leave within a tenth of a second (the SDK's own variable).
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "WEBHOOK_RETRY_COUNTDOWN": "0.3",
}
TRACE, PARENT = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
PRODUCER = f"00-{TRACE}-{PARENT}-01"
SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code


@pytest.fixture(scope="module")
def collector():
    server = OtlpCollector(PORT)
    yield server
    server.close()


def publish(tenant, traceparent: str | None = None) -> dict:
    headers = {**tenant.headers, **({"traceparent": traceparent} if traceparent else {})}
    published = tenant.client.post(
        "/cloud-agent/events",
        json={"type": "ConnectionUpdated", "data": connection_event()},
        headers=headers,
    )
    assert published.status_code == 202
    return published.json


def test_publish_and_attempts_are_spans_of_the_producers_trace(collector, tenant, receiver, worker):
    receiver.behave("/hook", statuses=[500], then=200)
    hook = tenant.add_webhook(receiver.url("/hook"))
    event = publish(tenant, PRODUCER)
    sent = [header(r, "traceparent") for r in receiver.wait_for("/hook", 2, WAIT)]

    [publish_span] = collector.wait_for(
        lambda s: s.name == "publish" and event["id"] in s.attributes["webhooks.event.ids"],
        "publishing the event",
    )
    assert (publish_span.trace_id, publish_span.parent_span_id) == (TRACE, PARENT)
    assert publish_span.kind == SERVER
    assert publish_span.attributes["webhooks.wallet.id"] == tenant.wallet_id
    assert publish_span.resource["service.name"] == "webhooks-under-test"

    attempts = collector.wait_for(
        lambda s: s.name == "attempt" and s.attributes["webhooks.event.id"] == event["id"],
        "the attempts",
    )
    attempts = sorted(attempts, key=lambda s: s.attributes["webhooks.attempt.number"])
    assert len(attempts) == 2
    for span, traceparent in zip(attempts, sent, strict=True):
        # The receiver is told the attempt's span as its parent, in the producer's trace.
        assert traceparent == f"00-{TRACE}-{span.span_id}-01"
        assert span.trace_id == TRACE and span.parent_span_id == publish_span.span_id
        assert span.kind == CLIENT and span.resource["webhooks.process"] == "worker"
        assert span.attributes["webhooks.webhook.id"] == hook["id"]
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["webhooks.attempt.duration_ms"] > 0 and span.duration_ms > 0
    failed, delivered = attempts
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.status_code == ERROR and failed.status_message == "HTTP 500"
    assert delivered.attributes["http.response.status_code"] == 200
    assert delivered.status_code != ERROR


def test_without_a_producer_trace_publishing_starts_one(collector, tenant, receiver, worker):
    tenant.add_webhook(receiver.url("/root"))
    event = publish(tenant)
    [sent] = [header(r, "traceparent") for r in receiver.wait_for("/root", 1, WAIT)]
    [publish_span] = collector.wait_for(
        lambda s: s.name == "publish" and event["id"] in s.attributes["webhooks.event.ids"],
        "publishing the event",
    )
    assert publish_span.parent_span_id == ""
    assert sent.split("-")[1] == publish_span.trace_id
