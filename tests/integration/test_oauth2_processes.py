"""One OAuth 2 token per worker process, however many deliveries its threads run at once:
50 deliveries through two real worker processes cost at most two token requests."""

import pytest

from tests.deliveries import deliveries_of, wait_until
from tests.helpers import connection_event
from tests.processes import start_worker
from tests.token_server import CLIENT_ID, CLIENT_SECRET, TokenServer

pytestmark = pytest.mark.slow
DELIVERIES = 50


@pytest.fixture(scope="module")
def two_workers(service_env, logdir):
    workers = [start_worker(service_env, logdir) for _ in range(2)]
    yield workers
    for process in workers:
        process.stop()


def test_fifty_deliveries_through_two_processes_cost_at_most_two_tokens(
    client, tenant, receiver, two_workers
):
    tokens = TokenServer()
    try:
        receiver.behave("/gateway", check=lambda h: None if tokens.accepts(h) else 401)
        auth = {
            "type": "oauth2",
            "tokenUrl": tokens.url,
            "clientId": CLIENT_ID,
            "clientSecret": CLIENT_SECRET,
        }
        tenant.add_webhook(receiver.url("/gateway"), auth=auth)
        published = [
            tenant.publish("ConnectionUpdated", connection_event()).json["id"]
            for _ in range(DELIVERIES)
        ]
        assert len(receiver.wait_for("/gateway", DELIVERIES, timeout=60)) == DELIVERIES

        def all_delivered():
            return all(
                d["status"] == "delivered"
                for event_id in published
                for d in deliveries_of(client, tenant.headers, event_id)
            )

        wait_until(all_delivered, "every delivery to be delivered")
        # Accepted the first time: every request carried a token the endpoint had issued.
        assert all(r.path == "/gateway" for r in receiver.requests)
        assert len(receiver.requests) == DELIVERIES
        assert 1 <= tokens.count <= 2, tokens.count
    finally:
        tokens.close()
