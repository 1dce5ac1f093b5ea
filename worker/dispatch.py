"""Sending delivery tasks: what the API (and in-process producers) call after their commit,
and what the worker and the sweep call for the deliveries they release."""

import time
import uuid
from collections.abc import Sequence
from functools import cache

import redis

from shared.coordination.outstanding import Outstanding, queue_of
from shared.store.rows import Outgoing
from worker.broker import queued_message
from worker.celery_app import celery_app, settings

DELIVER_TASK = "webhooks.deliver"
SCRIPT_MESSAGES = 500  # messages per Redis script call when many are sent at once
SENT_AT = "sent_at"


@cache
def outstanding() -> Outstanding:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=3)
    return Outstanding(client, settings.wallet_queue_share)


def send_deliveries(deliveries: Sequence[Outgoing]) -> None:
    """One task per delivery, each on the queue its wallet's outstanding messages give it
    (`shared.coordination.outstanding`)."""
    _send(deliveries)


def send_released(deliveries: Sequence[Outgoing]) -> None:
    """Tasks for deliveries a worker released from waiting in the database, on the retry
    queue (`Outstanding.send`)."""
    _send(deliveries, released=True)


def send_later(delivery: Outgoing, seconds: float) -> None:
    """The delivery's task, to run `seconds` from now: its moment under its webhook's rate
    limit is reserved already."""
    _send([delivery], due=time.time() + seconds, countdown=seconds, reserved=True)


def send_retry(delivery: Outgoing, seconds: float) -> None:
    """The delivery's next attempt, `seconds` from now, on the retry queue: as Celery's own
    retry of its task would send it."""
    _send([delivery], due=time.time() + seconds, released=True, countdown=seconds)


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


def _send(deliveries: Sequence[Outgoing], due=None, released=False, countdown=None, reserved=False):
    """Register the deliveries' messages as outstanding and push them onto their queues, in one
    Redis script call per SCRIPT_MESSAGES. If a call fails, which of the messages arrived is
    unknown, as when a loop of publishes fails halfway: the caller leaves them all to the sweep,
    and a message sent twice finds its delivery claimed or done."""
    # When the message was sent: the sweep compares it with the deliveries' enqueued_at to
    # tell which ones may still be queued.
    sent_at = time.time()
    for start in range(0, len(deliveries), SCRIPT_MESSAGES):
        chunk = deliveries[start : start + SCRIPT_MESSAGES]
        tasks = [_task(delivery, countdown, reserved, sent_at) for delivery in chunk]
        outstanding().send(
            [(delivery.id, delivery.wallet_id) for delivery in chunk],
            due=due,
            released=released,
            message_for=lambda index, entry, tasks=tasks: _queued(tasks[index], entry),
        )


def _task(delivery: Outgoing, countdown, reserved: bool, sent_at: float):
    """Celery's own message for the delivery's task (its protocol's headers and body, built by
    Celery), its entry still to be named: `send_task`'s routing, option merging, signals and
    argument reprs serve tasks in general, and here the options never change."""
    args = [str(delivery.id)]
    kwargs = task_kwargs(delivery, "", reserved)
    task = celery_app.amqp.as_task_v2(
        str(uuid.uuid4()),
        DELIVER_TASK,
        args,
        kwargs,
        countdown=countdown,
        # The worker's log shows these; given, Celery need not build them itself (the
        # kwargs' once the entry is named).
        argsrepr=repr(args),
        kwargsrepr="",
    )
    task.headers[SENT_AT] = sent_at
    return task


def _queued(task, entry: str) -> str:
    """The task's message under `entry`, for the queue the entry names."""
    kwargs = task.body[1]
    kwargs["entry"] = entry
    task.headers["kwargsrepr"] = repr(kwargs)
    return queued_message(
        task.body, task.headers, task.properties, queue_of(entry), celery_app.conf.task_serializer
    )
