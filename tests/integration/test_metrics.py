"""GET /_system/metrics counts what the separate worker process did."""

import re
import time

from tests.helpers import connection_event


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from:\n{text}"
    return float(match.group(1))


def scrape(client) -> str:
    response = client.get("/cloud-agent/_system/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return response.data.decode()


def test_metrics_count_events_outcomes_attempts_and_pending(client, tenant, receiver, worker):
    receiver.behave("/bad", then=500)
    tenant.add_webhook(receiver.url("/good"))
    tenant.add_webhook(receiver.url("/bad"), eventTypes=["PresentationUpdated"])
    tenant.publish("ConnectionUpdated", connection_event())
    tenant.publish(
        "PresentationUpdated", {"presentationId": "p", "role": "Prover", "status": "RequestSent"}
    )
    receiver.wait_for("/bad", 3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = scrape(client)
        if sample(text, 'webhooks_deliveries_total{outcome="failed"}') == 1:
            break
        time.sleep(0.2)

    assert sample(text, 'webhooks_events_published_total{type="ConnectionUpdated"}') == 1
    assert sample(text, 'webhooks_events_published_total{type="PresentationUpdated"}') == 1
    # Two deliveries to /good (both types) and one to /bad (three attempts).
    assert sample(text, 'webhooks_deliveries_total{outcome="delivered"}') == 2
    assert sample(text, 'webhooks_deliveries_total{outcome="failed"}') == 1
    assert sample(text, "webhooks_attempt_duration_seconds_count") == 5
    assert sample(text, 'webhooks_attempt_duration_seconds_bucket{le="+Inf"}') == 5
    assert sample(text, "webhooks_deliveries_pending") == 0
    assert sample(text, "webhooks_oldest_pending_delivery_age_seconds") == 0
    assert sample(text, 'webhooks_by_status{status="active"}') >= 2  # the two above, at least
    assert sample(text, 'webhooks_by_status{status="disabled"}') == 0


def test_unfinished_deliveries_and_their_age_are_shown(client, tenant, receiver, worker):
    receiver.behave("/slow", delay=1.8)  # answers just inside the 2 s timeout
    tenant.add_webhook(receiver.url("/slow"))
    tenant.publish("ConnectionUpdated", connection_event())
    receiver.wait_for("/slow", 1)
    time.sleep(1.1)
    text = scrape(client)
    assert sample(text, "webhooks_deliveries_pending") == 1
    assert sample(text, "webhooks_oldest_pending_delivery_age_seconds") >= 1.0
