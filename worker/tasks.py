"""Tasks: deliver one notification, sweep what no worker will do by itself, purge old events."""

import json
import logging
import threading
import time
import uuid

import redis
from celery.exceptions import MaxRetriesExceededError, Reject
from celery.signals import worker_process_init, worker_shutdown
from sqlalchemy.exc import OperationalError

from shared.attempt_rules import Outcome
from shared.coordination import liveness, queues
from shared.coordination.outstanding import Outstanding
from shared.coordination.slots import Slots
from shared.db import Database
from shared.logs import configure_logging
from shared.metrics import MetricsRecorder
from shared.outbox import leave_for_sweep, send_after_commit
from shared.sender import Sender
from shared.services.delivery import Deliverer, Message
from shared.services.health import HealthTracker
from shared.services.retention import purge
from shared.services.sweep import Broker, sweep
from shared.store.stores import delivery_store
from shared.throttle import WebhookLimiter
from shared.tracing import tracing_for
from worker.celery_app import celery_app, settings
from worker.dispatch import (
    DELIVER_TASK,
    SENT_AT,
    send_deliveries,
    send_later,
    send_released,
    send_retry,
)

log = logging.getLogger(__name__)
configure_logging(settings.log_level)
# How many of an ordered record's next deliveries a task runs in line, and for how long it
# starts more: a thread is not kept from the queues (and the other wallets' tasks) for more
# than a few tasks' worth of attempts.
RECORD_RUN_DELIVERIES = 8
RECORD_RUN_SECONDS = 1.0


class _Resources:
    """The database, HTTP pool, caps and heartbeat of this worker process, made on first use
    (after any fork)."""

    db = None
    deliverer = None
    broker = None
    heartbeat = None
    _lock = threading.Lock()

    @classmethod
    def alive(cls, worker_ids) -> set[str]:
        return liveness.alive(cls.broker, worker_ids)

    @classmethod
    def get(cls) -> type["_Resources"]:
        if cls.db is None:
            # The first tasks arrive on many threads at once, and they must all share one
            # limiter (and one pool): made once, under a lock, `db` set last.
            with cls._lock:
                if cls.db is None:
                    cls._make()
        return cls

    @classmethod
    def _make(cls) -> None:
        cls.broker = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        cls.heartbeat = liveness.Heartbeat(cls.broker)
        cls.heartbeat.start()
        # Claims and records go through the store (batched on PostgreSQL), so a few
        # connections serve all the threads (DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW).
        db = Database.for_process(settings)
        cls.deliverer = Deliverer(
            store=delivery_store(db, settings, cls.heartbeat.worker_id),
            sender=Sender(settings),
            limiter=WebhookLimiter(
                settings.max_in_flight_per_webhook,
                settings.max_in_flight_per_host,
                settings.max_in_flight_slow,
            ),
            health=HealthTracker(db, settings),
            slots=Slots(
                cls.broker,
                settings.max_in_flight_per_webhook,
                settings.max_in_flight_fast,
                ttl=settings.lease_seconds,
                owner=cls.heartbeat.worker_id,
            ),
            outstanding=Outstanding(cls.broker, settings.wallet_queue_share),
            metrics=MetricsRecorder(settings.redis_url),
            tracing=tracing_for(settings, "worker"),
        )
        cls.db = db


@worker_process_init.connect
def _reset_after_fork(**_):
    _Resources.db = None  # get() then makes all of them anew in the child


@worker_shutdown.connect
def _say_goodbye(**_):
    # What this process held is sent again at the next sweep, not a heartbeat's life later.
    if _Resources.heartbeat is not None:
        _Resources.heartbeat.stop()


@celery_app.task(name=DELIVER_TASK, bind=True, max_retries=settings.webhook_max_retries)
def deliver(self, delivery_id: str, **kwargs):
    resources = _Resources.get()
    started = time.monotonic()
    message = Message(uuid.UUID(delivery_id), **_known(kwargs))
    done = _run(resources, message)
    if done is None:
        return Outcome.WAIT
    _after(resources, message, done)
    _run_records_next(resources, done.next_of_record, started)
    if done.outcome != Outcome.RETRY:
        return done.outcome
    try:
        # Outstanding until it runs; the countdown is the rules', the same that the delivery's
        # row now says it is due at.
        due = time.time() + done.retry_in
        (entry,) = resources.deliverer.outstanding.send(
            [(message.delivery_id, message.wallet)], due
        )
        raise self.retry(
            countdown=done.retry_in,
            max_retries=settings.webhook_max_retries,
            queue=queues.RETRY,
            kwargs={**kwargs, "entry": entry, "slot": None, "reserved": False},
        )
    except MaxRetriesExceededError:
        # Celery's counter ran out but the database allows another attempt (this message was
        # re-sent by the sweep): leave the row pending for the sweep.
        leave_for_sweep(resources.db, [message.delivery_id])
        return done.outcome
    except (Reject, redis.RedisError):
        # The retry could not be published (broker down); the sweep sends it later.
        leave_for_sweep(resources.db, [message.delivery_id])
        raise


def _run(resources, message: Message):
    """The delivery's attempt; None when the database is unreachable. Its outstanding entry
    then stays, so that the sweep sends it again once the database is back."""
    try:
        return resources.deliverer.run(message)
    except OperationalError as exc:
        log.warning(
            "database unreachable (%s): delivery %s waits", _reason(exc), message.delivery_id
        )
        return None


def _after(resources, message: Message, done) -> None:
    """What the attempt leaves to send: the deliveries it released, and itself again when its
    rate limit's moment is a few seconds away."""
    send_after_commit(resources.db, send_released, done.to_send)
    if done.come_back_in is not None:
        _send_later(resources, message, done.come_back_in)


def _run_records_next(resources, following, started: float) -> None:
    """The next delivery of an ordered record whose delivery just ended runs in this task, and
    then that one's next: up to RECORD_RUN_DELIVERIES of them, none started once the task has
    run RECORD_RUN_SECONDS. The one after those is sent a task of its own.

    A record's events go out one after another, and each would otherwise pay a message and
    a task, and wait behind the whole queue, before its attempt. Each runs as its own task
    would (the webhook's slot, the thread shares, the claim), with no outstanding entry: the
    row is pending for the moment between its release and its claim, and is claimed by this
    worker after that (a lost worker's attempt is the sweep's, as any other)."""
    for ran in range(RECORD_RUN_DELIVERIES + 1):
        if following is None:
            return
        if ran == RECORD_RUN_DELIVERIES or time.monotonic() - started >= RECORD_RUN_SECONDS:
            send_after_commit(resources.db, send_released, [following])
            return
        message = Message.of(following)
        done = _run(resources, message)
        if done is None:
            # The sweep finds a pending delivery with no message (DELIVERY_STUCK_AFTER).
            return
        _after(resources, message, done)
        if done.outcome == Outcome.RETRY:
            _send_retry(resources, message, done.retry_in)
        following = done.next_of_record


def _reason(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0][:200] if exc.orig else type(exc).__name__


def _known(kwargs: dict) -> dict:
    """The message's fields this release knows (an older or newer release may send more)."""
    names = ("webhook", "host", "wallet", "entry", "rate", "slot", "reserved")
    return {name: kwargs[name] for name in names if kwargs.get(name) is not None}


def _send_later(resources, message: Message, seconds: float) -> None:
    try:
        send_later(message.outgoing(), seconds)
    except Exception as exc:  # the broker is down: the row waits for the sweep
        log.warning("could not send a rate-limited delivery again (%s)", type(exc).__name__)
        resources.deliverer.store.park(message.delivery_id, "the broker was unreachable")


def _send_retry(resources, message: Message, seconds: float) -> None:
    """The next attempt of a delivery run in line (no message of its own to retry)."""
    try:
        send_retry(message.outgoing(slot=None), seconds)
    except Exception as exc:  # the broker is down: the sweep sends it when it is due
        log.warning("could not send a retry (%s); the sweep will", type(exc).__name__)
        leave_for_sweep(resources.db, [message.delivery_id])


def _oldest_queued(broker: redis.Redis) -> dict[str, float] | None:
    """Per queue, when its oldest message was sent; None when Redis cannot tell.

    A Kombu queue is a list, pushed on the left and popped on the right: its last element is
    the oldest message. A message sent before that moment is no longer in that queue.
    """
    oldest = {}
    try:
        for queue in queues.ALL:
            raw = broker.lindex(queue, -1)
            if raw is None:
                continue
            sent_at = json.loads(raw).get("headers", {}).get(SENT_AT)
            if isinstance(sent_at, int | float):
                oldest[queue] = sent_at
    except (redis.RedisError, ValueError):
        return None
    return oldest


@celery_app.task(name="webhooks.sweep")
def sweep_deliveries() -> int:
    resources = _Resources.get()
    deliverer = resources.deliverer
    broker = Broker(
        oldest_queued=_oldest_queued(resources.broker),
        epoch=liveness.epoch(resources.broker),
        overdue=deliverer.outstanding.overdue(time.time() - settings.message_lost_after),
        alive=resources.alive,
        receipts=deliverer.slots.receipts,
    )
    try:
        with resources.db.transaction() as session:
            swept = sweep(session, settings, broker, on_probe=deliverer.metrics.probe_started)
    except OperationalError as exc:
        log.warning("database unreachable (%s): the next sweep tries again", _reason(exc))
        return 0
    log.debug(
        "sweep: %d messages overdue, %d forgotten, %d to send, %d webhooks to restart;"
        " oldest queued %s",
        len(broker.overdue),
        len(swept.forget),
        len(swept.to_send),
        len(swept.restart),
        broker.oldest_queued,
    )
    deliverer.outstanding.forget(swept.forget)
    restarted = _restart(deliverer, swept.restart)
    send_after_commit(resources.db, send_deliveries, swept.to_send)
    send_after_commit(resources.db, send_released, restarted)
    outgoing = swept.to_send + restarted
    if outgoing:
        log.info("sweep sent %d deliveries", len(outgoing))
    return len(outgoing)


def _restart(deliverer: Deliverer, webhooks) -> list:
    """Waiting deliveries of webhooks nothing runs for: as many as it has free slots (each
    with its slot), or, under a rate limit, as many as it takes in two sweeps (each reserves
    its moment). A webhook with attempts running gets them handed its slots."""
    outgoing = []
    alive = _Resources.alive
    for webhook in webhooks:
        deliverer.slots.drop_dead(str(webhook.id), alive)
        if webhook.rate_limit:
            count = max(1, int(webhook.rate_limit * settings.sweep_interval * 2))
            outgoing += deliverer.store.release_waiting(webhook.id, count)
        elif deliverer.slots.running(str(webhook.id)) == 0:
            outgoing += deliverer.hand_over(webhook.id, deliverer.slots.free(str(webhook.id)))
        else:
            # Its running attempts hand their slots over as they end, if they know that
            # deliveries wait.
            deliverer.slots.expect_waiting(str(webhook.id), settings.max_in_flight_fast)
    return outgoing


@celery_app.task(name="webhooks.purge")
def purge_events() -> int:
    # Batches of their own transactions, until done or the run's time is up (see retention).
    removed = purge(_Resources.get().db, settings)
    if removed:
        log.info("purged %d events older than %d days", removed, settings.retention_days)
    return removed
