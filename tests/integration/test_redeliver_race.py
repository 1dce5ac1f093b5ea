"""Concurrent redeliveries of one delivery start exactly one round; the others answer 409."""

import threading
import uuid

import pytest
from sqlalchemy import update

from shared.errors import Conflict
from shared.models import Delivery, DeliveryStatus
from shared.publishing import publish
from shared.services import delivery_log
from shared.services.webhooks import WebhookRequest, create_webhook
from tests.helpers import connection_event

DEFAULT_WALLET = uuid.UUID(int=0)
CALLERS = 8
REPETITIONS = 25


@pytest.fixture
def failed_delivery(database, settings):
    if database.is_sqlite:
        pytest.skip("concurrent transactions need PostgreSQL (TEST_DATABASE_URL)")
    with database.transaction() as session:
        create_webhook(
            session, settings, DEFAULT_WALLET, WebhookRequest("http://receiver.test/hook")
        )
    published = publish(database, settings, DEFAULT_WALLET, "ConnectionUpdated", connection_event())
    [delivery] = published.deliveries
    return delivery.id


def fail(database, delivery_id):
    with database.transaction() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status=DeliveryStatus.FAILED, attempts=3)
        )


def redeliver_at_once(database, delivery_id) -> list[str]:
    barrier = threading.Barrier(CALLERS)
    outcomes = []

    def call():
        barrier.wait()
        try:
            with database.transaction() as session:
                delivery_log.redeliver(session, None, delivery_id)
            outcomes.append("started")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_redeliveries_start_exactly_one_round(database, failed_delivery):
    for repetition in range(REPETITIONS):
        fail(database, failed_delivery)
        outcomes = redeliver_at_once(database, failed_delivery)
        assert sorted(outcomes) == ["conflict"] * (CALLERS - 1) + ["started"], repetition
        with database.session() as session:
            row = session.get(Delivery, failed_delivery)
            assert (row.status, row.round, row.attempts) == ("pending", repetition + 2, 0)
