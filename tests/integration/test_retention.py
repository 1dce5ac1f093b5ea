"""The purge removes every finished event older than RETENTION_DAYS in one run, in batches."""

import uuid
from datetime import timedelta

from sqlalchemy import func, insert, select

from shared.models import Attempt, Delivery, DeliveryStatus, Event
from shared.services.retention import purge
from shared.timeutil import utcnow

DEFAULT_WALLET = uuid.UUID(int=0)


def add_events(database, count: int, age: timedelta, status: DeliveryStatus) -> None:
    created = utcnow() - age
    events, deliveries, attempts = [], [], []
    for _ in range(count):
        event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
        events.append(
            {
                "id": event_id,
                "wallet_id": DEFAULT_WALLET,
                "type": "ConnectionUpdated",
                "body": "{}",
                "created_at": created,
            }
        )
        deliveries.append(
            {
                "id": delivery_id,
                "event_id": event_id,
                "wallet_id": DEFAULT_WALLET,
                "target": "wallet",
                "url": "http://receiver.test/",
                "status": status,
                "round": 1,
                "attempts": 1,
                "next_attempt_at": created,
                "created_at": created,
                "updated_at": created,
            }
        )
        attempts.append(
            {
                "delivery_id": delivery_id,
                "round": 1,
                "number": 1,
                "started_at": created,
                "duration_ms": 1.0,
                "status_code": 200,
            }
        )
    with database.transaction() as session:
        session.execute(insert(Event), events)
        session.execute(insert(Delivery), deliveries)
        session.execute(insert(Attempt), attempts)


def counts(database) -> tuple[int, int, int]:
    with database.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (Event, Delivery, Attempt)
        )


def test_one_run_removes_every_old_finished_event(database, settings):
    # More than the 10,000 one run used to stop at.
    add_events(database, 12_000, timedelta(days=31), DeliveryStatus.DELIVERED)
    add_events(database, 5, timedelta(days=31), DeliveryStatus.PENDING)  # still owed
    add_events(database, 7, timedelta(days=29), DeliveryStatus.FAILED)  # not old enough
    assert purge(database, settings) == 12_000
    assert counts(database) == (12, 12, 12)
    assert purge(database, settings) == 0


def test_a_run_stops_when_its_time_is_up_and_the_next_one_continues(database, settings):
    add_events(database, 300, timedelta(days=40), DeliveryStatus.FAILED)
    # No time at all: one batch is still done, so every run makes progress.
    assert purge(database, settings, batch_size=100, run_seconds=0) == 100
    assert purge(database, settings, batch_size=100) == 200
    assert counts(database) == (0, 0, 0)
