"""Delivery task messages as the senders push them (worker.dispatch): a worker's kombu reads
them back as the tasks they were, on the queue their outstanding entry names, in the form
kombu's own producer gives a message."""

import json
import time
import uuid

import pytest
import redis

from shared.coordination import queues
from shared.coordination.outstanding import bulk_lane, queue_of, wallet_key
from shared.store.rows import Outgoing


@pytest.fixture
def broker(settings):
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    client.close()


def _delivery(wallet_id: uuid.UUID, slot: str | None = None) -> Outgoing:
    return Outgoing(
        uuid.uuid4(), "http://receiver.test:8080/hook", uuid.uuid4(), wallet_id, 5, slot
    )


def _received(queue: str, count: int) -> list:
    """Read `count` messages from `queue` as a worker does: kombu's consumer, acknowledged."""
    from worker.celery_app import celery_app

    received = []
    with celery_app.connection_for_read() as connection:
        with connection.SimpleQueue(queue, no_ack=True) as simple:
            for _ in range(count):
                received.append(simple.get(timeout=5))
    return received


def test_a_sent_task_reads_back_as_the_task_on_its_entrys_queue(settings, broker):
    from worker.dispatch import DELIVER_TASK, SENT_AT, send_deliveries

    wallet = uuid.uuid4()
    delivery = _delivery(wallet, slot="slot-1")
    before = time.time()
    send_deliveries([delivery])

    (entry,) = [member.decode() for member in broker.zrange(wallet_key(wallet), 0, -1)]
    assert queue_of(entry) == queues.FIRST
    (message,) = _received(queues.FIRST, 1)
    args, kwargs, _embed = message.decode()
    assert message.headers["task"] == DELIVER_TASK
    assert args == [str(delivery.id)]
    assert kwargs == {
        "webhook": str(delivery.webhook_id),
        "host": "http://receiver.test:8080",
        "wallet": str(wallet),
        "entry": entry,
        "rate": 5,
        "slot": "slot-1",
    }
    assert message.headers["kwargsrepr"] == repr(kwargs)
    assert before <= message.headers[SENT_AT] <= time.time()
    assert message.delivery_info["routing_key"] == queues.FIRST


def test_beyond_its_share_a_wallets_messages_take_its_bulk_lane(settings, broker):
    from worker.dispatch import send_deliveries

    wallet = uuid.uuid4()
    share = settings.wallet_queue_share
    deliveries = [_delivery(wallet) for _ in range(share + 3)]
    send_deliveries(deliveries)

    lane = bulk_lane(wallet)
    assert broker.llen(queues.FIRST) == share
    assert broker.llen(lane) == 3
    pushed = {
        kwargs["entry"]: args[0]
        for message in _received(queues.FIRST, share) + _received(lane, 3)
        for args, kwargs, _ in [message.decode()]
    }
    entries = {member.decode() for member in broker.zrange(wallet_key(wallet), 0, -1)}
    # Each entry is carried by exactly one message, naming its delivery and its queue.
    assert set(pushed) == entries
    assert sorted(pushed.values()) == sorted(str(d.id) for d in deliveries)
    assert sum(queue_of(entry) == lane for entry in entries) == 3


def test_a_rate_limited_delivery_waits_on_the_retry_queue_until_its_moment(settings, broker):
    from worker.dispatch import send_later

    wallet = uuid.uuid4()
    before = time.time()
    send_later(_delivery(wallet), 30)

    ((entry, due),) = broker.zrange(wallet_key(wallet), 0, -1, withscores=True)
    assert queue_of(entry.decode()) == queues.RETRY
    assert before + 30 <= due <= time.time() + 30
    (message,) = _received(queues.RETRY, 1)
    _args, kwargs, _ = message.decode()
    assert kwargs["reserved"] is True and kwargs["entry"] == entry.decode()
    assert message.headers["eta"] is not None


def test_the_pushed_form_is_kombus_own(settings, broker):
    """The same task published through kombu's producer, read raw from its list: the two
    differ only in the tag kombu gives every message."""
    from worker.broker import queued_message
    from worker.celery_app import celery_app
    from worker.dispatch import _task

    task = _task(_delivery(uuid.uuid4()), None, False, time.time())
    queue = "webhooks.test-form"
    with celery_app.producer_or_acquire() as producer:
        producer.publish(
            task.body,
            exchange="",
            routing_key=queue,
            declare=[],
            serializer="json",
            delivery_mode=2,
            headers=task.headers,
            **task.properties,
        )
    by_kombu = json.loads(broker.rpop(queue))
    ours = json.loads(queued_message(task.body, task.headers, task.properties, queue, "json"))
    assert by_kombu["properties"].pop("delivery_tag") != ours["properties"].pop("delivery_tag")
    assert ours == by_kombu
