"""What waiting at a webhook's cap costs (contract §10), with two real worker processes: a fast
webhook's backlog goes through its cap without waiting in the database, and a slow webhook's
deliveries wait there once each, never parked and released again and again while other
tenants' attempts end.

A park (a delivery put to wait in the database) and a release (back to pending) are counted by
a trigger of the test's own on the deliveries table, so PostgreSQL only.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from sqlalchemy import text

from tests.e2e.conftest import Publisher, Stack, delivery_statuses, wait_for_arrivals
from tests.e2e.test_scale_out import _publish_batches

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="counts parks with a PostgreSQL trigger",
    ),
]

COUNT_PARKS = (
    "CREATE TABLE test_parks (delivery_id uuid, webhook_id uuid, parked boolean, reason text)",
    """
    CREATE FUNCTION test_note_park() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO test_parks
            VALUES (NEW.id, NEW.webhook_id, NEW.status = 'waiting', NEW.last_error);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER test_parks AFTER UPDATE OF status ON deliveries FOR EACH ROW
    WHEN ((OLD.status = 'waiting') IS DISTINCT FROM (NEW.status = 'waiting'))
    EXECUTE FUNCTION test_note_park()
    """,
)
STOP_COUNTING = (
    "DROP TRIGGER IF EXISTS test_parks ON deliveries",
    "DROP FUNCTION IF EXISTS test_note_park()",
    "DROP TABLE IF EXISTS test_parks",
)


class Parks:
    """Parks and releases of a webhook's deliveries, as the trigger noted them."""

    def __init__(self, database):
        self.database = database

    def _rows(self, webhook_id: str, parked: bool) -> list:
        with self.database.engine.connect() as connection:
            return connection.execute(
                text(
                    "SELECT delivery_id, reason FROM test_parks"
                    " WHERE webhook_id = CAST(:webhook AS uuid) AND parked = :parked"
                ),
                {"webhook": webhook_id, "parked": parked},
            ).all()

    def per_delivery(self, webhook_id: str) -> Counter:
        """How many times each delivery was parked."""
        return Counter(row[0] for row in self._rows(webhook_id, True))

    def reasons(self, webhook_id: str) -> Counter:
        """Parks by the reason each delivery was given."""
        return Counter(row[1] for row in self._rows(webhook_id, True))

    def releases(self, webhook_id: str) -> int:
        return len(self._rows(webhook_id, False))


@pytest.fixture
def parks(database):
    def run(statements):
        with database.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    run(STOP_COUNTING)
    run(COUNT_PARKS)
    yield Parks(database)
    run(STOP_COUNTING)


def test_a_fast_webhooks_backlog_goes_through_its_cap_without_waiting_in_the_database(
    service_env, receiver, parks, database, tmp_path
):
    env = {**service_env, "WEBHOOK_MAX_IN_FLIGHT_FAST": "4"}
    stack = Stack(env, tmp_path / "logs")
    stack.logdir.mkdir()
    try:
        web, _ = stack.web(), stack.beat()
        stack.worker(), stack.worker()
        tenant = web.api.onboard("backlog")
        hook = tenant.add_webhook(receiver.url("/backlog"))
        receiver.behave("/backlog", delay=0.01)
        # Its first answer, once recorded, shows it a fast webhook.
        Publisher(tenant, threads=1).start(count=1).join()
        assert wait_for_arrivals(receiver, "/backlog", 1, timeout=60) == 1
        deadline = time.monotonic() + 30
        while delivery_statuses(database)["delivered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        ids = _publish_batches(tenant, 3)
        arrived = wait_for_arrivals(receiver, "/backlog", 1 + len(ids), timeout=120)
        reasons = parks.reasons(hook["id"])
        most = receiver.most_running("/backlog")
        print(f"[fast backlog, cap 4] arrived {arrived}, most at once {most}, "
              f"parked {dict(reasons)} of {len(ids)}")  # fmt: skip
        assert arrived == 1 + len(ids)
        assert most <= 4
        # Each delivery beyond the cap waited in its worker's thread for a slot to free.
        assert sum(reasons.values()) <= len(ids) // 20
    finally:
        stack.close()


def test_a_slow_webhooks_deliveries_wait_once_while_other_attempts_end(
    service_env, receiver, parks, tmp_path
):
    env = {**service_env, "WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK": "3"}
    stack = Stack(env, tmp_path / "logs")
    stack.logdir.mkdir()
    try:
        web, _ = stack.web(), stack.beat()
        stack.worker(), stack.worker()
        slow, busy = web.api.onboard("slow"), web.api.onboard("busy")
        hook = slow.add_webhook(receiver.url("/slow"))
        busy.add_webhook(receiver.url("/busy"))
        receiver.behave("/slow", delay=1.0)
        slow_ids = _publish_batches(slow, 1, size=30)
        # Meanwhile another tenant's attempts end, many times a second, in both workers.
        Publisher(busy, threads=2).start(count=300).join()
        assert wait_for_arrivals(receiver, "/busy", 300, timeout=120) == 300
        arrived = wait_for_arrivals(receiver, "/slow", len(slow_ids), timeout=120)
        parked = parks.per_delivery(hook["id"])
        released = parks.releases(hook["id"])
        most = receiver.most_running("/slow")
        print(f"[slow webhook beside a busy one] arrived {arrived}, most at once {most}, "
              f"parks {sum(parked.values())} (most of one {max(parked.values(), default=0)}), "
              f"releases {released}")  # fmt: skip
        assert arrived == len(slow_ids)
        assert most <= 3
        assert max(parked.values(), default=0) <= 2
        assert released <= len(slow_ids)
    finally:
        stack.close()
