"""Sending delivery tasks: what the API (and in-process producers) call after their commit."""

from collections.abc import Sequence

from worker.celery_app import FIRST_QUEUE, celery_app

DELIVER_TASK = "webhooks.deliver"


def send_deliveries(delivery_ids: Sequence) -> None:
    """One task per delivery, carrying only its id, over one broker connection."""
    with celery_app.producer_or_acquire() as producer:
        for delivery_id in delivery_ids:
            celery_app.send_task(
                DELIVER_TASK, args=[str(delivery_id)], queue=FIRST_QUEUE, producer=producer
            )
