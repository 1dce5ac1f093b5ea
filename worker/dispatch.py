"""Sending delivery tasks: what the API (and in-process producers) call after their commit."""

import time
import uuid
from collections.abc import Sequence

from shared.store.rows import Outgoing
from worker.celery_app import FIRST_QUEUE, celery_app

DELIVER_TASK = "webhooks.deliver"
SENT_AT = "sent_at"


def send_deliveries(deliveries: Sequence[Outgoing]) -> None:
    """One task per delivery, over one broker connection.

    A task carries the delivery's id, its webhook and its host (scheme://host:port), so that a
    worker applies the caps before touching the database.

    Each message is Celery's own (its protocol's headers and body, built by Celery), published
    straight to the queue: `send_task`'s routing, option merging, signals and argument reprs
    serve tasks in general, and here the queue and the options never change.
    """
    # When the message was sent: the sweep compares it with the deliveries' enqueued_at to
    # tell which ones may still be queued.
    sent_at = time.time()
    conf = celery_app.conf
    with celery_app.producer_or_acquire() as producer:
        for delivery in deliveries:
            args = [str(delivery.id)]
            kwargs = {"webhook": str(delivery.webhook_id), "host": delivery.host}
            task_id = str(uuid.uuid4())
            message = celery_app.amqp.as_task_v2(
                task_id,
                DELIVER_TASK,
                args,
                kwargs,
                # The worker's log shows these; given, Celery need not build them itself.
                argsrepr=repr(args),
                kwargsrepr=repr(kwargs),
            )
            message.headers[SENT_AT] = sent_at
            producer.publish(
                message.body,
                # The default exchange routes straight onto the queue's list; the queue is
                # declared by the workers, so no declaration (a cached, retried check) per
                # message.
                exchange="",
                routing_key=FIRST_QUEUE,
                declare=[],
                serializer=conf.task_serializer,
                delivery_mode=2,
                headers=message.headers,
                retry=True,
                retry_policy=conf.task_publish_retry_policy,
                **message.properties,
            )
