"""What the sweep sends again, on the test database: lost messages, but not queued ones."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.coordination import queues
from shared.models import Delivery
from shared.publishing import publish
from shared.services.sweep import Broker, sweep
from shared.services.webhooks import WebhookRequest, create_webhook
from shared.timeutil import utcnow
from tests.helpers import connection_event

DEFAULT_WALLET = uuid.UUID(int=0)


@pytest.fixture(autouse=True)
def webhook(database, settings):
    with database.transaction() as session:
        create_webhook(
            session, settings, DEFAULT_WALLET, WebhookRequest("http://receiver.test/hook")
        )


def _pending(database, settings, enqueued_ago: float | None) -> uuid.UUID:
    """A pending delivery whose message was sent `enqueued_ago` seconds ago (None: never)."""
    published = publish(database, settings, DEFAULT_WALLET, "ConnectionUpdated", connection_event())
    (delivery,) = published.deliveries
    enqueued = None if enqueued_ago is None else utcnow() - timedelta(seconds=enqueued_ago)
    with database.transaction() as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery.id).values(enqueued_at=enqueued)
        )
    return delivery.id


def _swept(database, settings, oldest_queued=None) -> set[uuid.UUID]:
    """What one sweep sends; `oldest_queued`: when the oldest message still queued was sent."""
    queued = {} if oldest_queued is None else {queues.FIRST: oldest_queued.timestamp()}
    with database.transaction() as session:
        swept = sweep(session, settings, Broker(oldest_queued=queued))
    return {out.id for out in swept.to_send}


def test_a_message_that_never_ran_is_sent_again_once_nothing_is_queued(database, settings):
    old = _pending(database, settings, enqueued_ago=settings.delivery_stuck_after + 5)
    recent = _pending(database, settings, enqueued_ago=0)
    assert _swept(database, settings) == {old}
    assert _swept(database, settings) == set()  # not twice in a row
    assert recent not in _swept(database, settings)


def test_behind_a_backlog_an_old_message_is_left_to_arrive(database, settings):
    stuck = settings.delivery_stuck_after
    old = _pending(database, settings, enqueued_ago=stuck + 5)
    # Queued messages older than it: its own may be among them.
    assert _swept(database, settings, utcnow() - timedelta(seconds=stuck + 60)) == set()
    # The oldest queued message was sent after it: its own is gone, it is sent again, once.
    oldest = utcnow() - timedelta(seconds=1)
    assert _swept(database, settings, oldest) == {old}
    assert _swept(database, settings, oldest) == set()


def test_each_delivery_is_judged_by_itself(database, settings):
    stuck = settings.delivery_stuck_after
    lost = _pending(database, settings, enqueued_ago=stuck + 30)
    queued = _pending(database, settings, enqueued_ago=stuck + 5)
    oldest_queued = utcnow() - timedelta(seconds=stuck + 10)
    swept = _swept(database, settings, oldest_queued)
    assert lost in swept and queued not in swept


def test_a_delivery_never_sent_is_sent_even_behind_a_backlog(database, settings):
    never = _pending(database, settings, enqueued_ago=None)
    assert _swept(database, settings, utcnow() - timedelta(hours=1)) == {never}
