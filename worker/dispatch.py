"""Sending delivery tasks: what the API (and in-process producers) call after their commit,
and what the worker and the sweep call for the deliveries they release."""

import time
import uuid
from collections.abc import Sequence
from functools import cache

import redis

from shared.coordination.outstanding import Outstanding, queue_of
from shared.store.rows import Outgoing
from worker.celery_app import celery_app, settings

DELIVER_TASK = "webhooks.deliver"
PIPELINE_MESSAGES = 500  # messages per Redis pipeline when many are sent at once
SENT_AT = "sent_at"


@cache
def outstanding() -> Outstanding:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    return Outstanding(client, settings.wallet_queue_share)


def send_deliveries(deliveries: Sequence[Outgoing]) -> None:
    """One task per delivery, over one broker connection, each on the queue its wallet's
    outstanding messages give it (`shared.coordination.outstanding`)."""
    entries = outstanding().send([(d.id, d.wallet_id) for d in deliveries])
    _publish(list(zip(deliveries, entries, strict=True)))


def send_released(deliveries: Sequence[Outgoing]) -> None:
    """Tasks for deliveries a worker released from waiting in the database, on the retry
    queue (`Outstanding.send`)."""
    entries = outstanding().send([(d.id, d.wallet_id) for d in deliveries], released=True)
    _publish(list(zip(deliveries, entries, strict=True)))


def send_later(delivery: Outgoing, seconds: float) -> None:
    """The delivery's task, to run `seconds` from now: its moment under its webhook's rate
    limit is reserved already."""
    (entry,) = outstanding().send([(delivery.id, delivery.wallet_id)], due=time.time() + seconds)
    _publish([(delivery, entry)], countdown=seconds, reserved=True)


def task_kwargs(delivery: Outgoing, entry: str, reserved: bool = False) -> dict:
    """What a worker needs before it touches the database: the webhook (caps and rate), the
    host (per-host cap), the wallet and entry (its outstanding message), a slot handed over."""
    kwargs = {
        "webhook": str(delivery.webhook_id) if delivery.webhook_id else None,
        "host": delivery.host,
        "wallet": str(delivery.wallet_id) if delivery.wallet_id else None,
        "entry": entry,
        "rate": delivery.rate_limit,
    }
    if delivery.slot:
        kwargs["slot"] = delivery.slot
    if reserved:
        kwargs["reserved"] = True
    return kwargs


def _publish(messages: list[tuple[Outgoing, str]], countdown=None, reserved=False) -> None:
    """Each message is Celery's own (its protocol's headers and body, built by Celery),
    published straight to its queue's list: `send_task`'s routing, option merging, signals and
    argument reprs serve tasks in general, and here the options never change.
    """
    # When the message was sent: the sweep compares it with the deliveries' enqueued_at to
    # tell which ones may still be queued.
    sent_at = time.time()
    conf = celery_app.conf
    with celery_app.producer_or_acquire() as producer, producer.batch(PIPELINE_MESSAGES):
        # The messages go to Redis in one pipeline, not one round trip each. If it fails,
        # which of them arrived is unknown, as when a loop of publishes failed halfway: the
        # caller leaves them all to the sweep, and a message sent twice finds its delivery
        # claimed or done.
        for delivery, entry in messages:
            args = [str(delivery.id)]
            kwargs = task_kwargs(delivery, entry, reserved)
            message = celery_app.amqp.as_task_v2(
                str(uuid.uuid4()),
                DELIVER_TASK,
                args,
                kwargs,
                countdown=countdown,
                # The worker's log shows these; given, Celery need not build them itself.
                argsrepr=repr(args),
                kwargsrepr=repr(kwargs),
            )
            message.headers[SENT_AT] = sent_at
            producer.publish(
                message.body,
                # The anonymous exchange puts the message straight onto the queue's list, with
                # no binding to look up (none survives Redis being emptied) and no declaration.
                exchange="",
                routing_key=queue_of(entry),
                declare=[],
                serializer=conf.task_serializer,
                delivery_mode=2,
                headers=message.headers,
                retry=True,
                retry_policy=conf.task_publish_retry_policy,
                **message.properties,
            )
