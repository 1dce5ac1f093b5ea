"""Sending delivery tasks: what the API (and in-process producers) call after their commit."""

import time
from collections.abc import Sequence

from shared.publishing import Outgoing
from worker.celery_app import FIRST_QUEUE, celery_app

DELIVER_TASK = "webhooks.deliver"
SENT_AT = "sent_at"


def send_deliveries(deliveries: Sequence[Outgoing]) -> None:
    """One task per delivery, over one broker connection.

    A task carries the delivery's id, its webhook and its host (scheme://host:port), so that a
    worker applies the caps before touching the database.
    """
    # When the message was sent: the sweep compares it with the deliveries' enqueued_at to
    # tell which ones may still be queued.
    headers = {SENT_AT: time.time()}
    with celery_app.producer_or_acquire() as producer:
        for delivery in deliveries:
            celery_app.send_task(
                DELIVER_TASK,
                args=[str(delivery.id)],
                kwargs={"webhook": str(delivery.webhook_id), "host": delivery.host},
                queue=FIRST_QUEUE,
                producer=producer,
                headers=headers,
                # Celery sends to a direct queue through the default exchange, straight onto
                # the queue's list; declaring the queue before every message (a retried,
                # cached check) only cost the API a twentieth of its CPU.
                declare=[],
            )
