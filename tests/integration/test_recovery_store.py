"""Recovery in the store and the sweep, on the test database: a record's order comes from the
database's sequence, not a web host's clock; a lowered WEBHOOK_MAX_RETRIES ends the deliveries
it strands; a failing webhook's probe is a delivery already tried that keeps an attempt."""

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from shared.models import Delivery, DeliveryStatus
from shared.publishing import publish
from shared.services.sweep import Broker, sweep
from shared.services.webhooks import WebhookRequest, create_webhook
from shared.settings import load_settings
from shared.store import waiting
from shared.store.deliveries import NO_ATTEMPT_LEFT
from shared.store.stores import delivery_store
from shared.timeutil import utcnow
from tests.helpers import connection_event

DEFAULT_WALLET = uuid.UUID(int=0)


def _webhook(database, settings, **options) -> uuid.UUID:
    with database.transaction() as session:
        request = WebhookRequest("http://receiver.test/hook", **options)
        return create_webhook(session, settings, DEFAULT_WALLET, request).id


def _publish(database, settings, data) -> uuid.UUID:
    """The id of the event's one delivery (sent, or stored waiting behind its record)."""
    published = publish(database, settings, DEFAULT_WALLET, "ConnectionUpdated", data)
    with database.session() as session:
        (delivery_id,) = session.scalars(
            select(Delivery.id).where(Delivery.event_id == published.id)
        ).all()
    return delivery_id


def _set(database, delivery_id, **values) -> None:
    with database.transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def _row(database, delivery_id) -> Delivery:
    with database.session() as session:
        return session.get(Delivery, delivery_id)


def test_a_records_order_follows_the_sequence_not_the_clock(database, settings):
    _webhook(database, settings, ordering="record")
    record = str(uuid.uuid4())
    first = _publish(database, settings, connection_event(connectionId=record))
    second = _publish(database, settings, connection_event("ConnectionRequestReceived",
                                                           connectionId=record))  # fmt: skip
    # The second was stored by a web host whose clock runs an hour behind, and its message
    # went out (as when the first was not yet committed when the second was published).
    earlier = _row(database, first).created_at - timedelta(hours=1)
    _set(database, second, status=DeliveryStatus.PENDING, created_at=earlier)
    store = delivery_store(database, settings)
    assert store.claim(second) is None  # behind the first, whatever the clocks say
    assert store.claim(first) is not None


def test_a_lowered_retry_setting_ends_the_deliveries_it_strands(database, settings):
    _webhook(database, settings)
    stranded = _publish(database, settings, connection_event())
    _set(database, stranded, attempts=2, next_attempt_at=utcnow() + timedelta(hours=1))
    lowered = load_settings({**_env(settings), "WEBHOOK_MAX_RETRIES": "1"})
    with database.transaction() as session:
        sweep(session, lowered, Broker(oldest_queued={}))
    row = _row(database, stranded)
    assert (row.status, row.last_error) == (DeliveryStatus.FAILED, NO_ATTEMPT_LEFT)


def _env(settings) -> dict:
    return {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}


def test_a_probe_is_a_tried_delivery_that_keeps_an_attempt(database, settings):
    webhook = _webhook(database, settings)
    ids = [_publish(database, settings, connection_event()) for _ in range(4)]
    for delivery_id, attempts in zip(ids, (0, 2, 1, 0), strict=True):
        _set(database, delivery_id, status=DeliveryStatus.WAITING, attempts=attempts)
    with database.statements() as conn:
        probe = waiting.start_probe(conn, webhook, settings.max_attempts, utcnow())
    assert probe.id == ids[2]  # tried once: its probe cannot fail it
    _set(database, ids[2], status=DeliveryStatus.IN_FLIGHT)  # a worker took it
    with database.statements() as conn:
        probe = waiting.start_probe(conn, webhook, settings.max_attempts, utcnow())
    assert probe.id == ids[0]  # then the oldest never tried; the last attempt comes last
