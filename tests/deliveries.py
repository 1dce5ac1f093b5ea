"""Reading the delivery log from tests, and waiting for it to reach a state."""

import time

import pytest

DELIVERIES = "/cloud-agent/events/deliveries"
WAIT = 30.0  # generous: the machine is small and shared


def header(request, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


def deliveries_of(client, headers, event_id: str) -> list[dict]:
    response = client.get(DELIVERIES, query_string={"eventId": event_id}, headers=headers)
    assert response.status_code == 200, response.json
    return response.json["contents"]


def detail(client, headers, delivery_id: str) -> dict:
    response = client.get(f"{DELIVERIES}/{delivery_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def wait_until(probe, what: str, timeout: float = WAIT):
    """Poll `probe` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
