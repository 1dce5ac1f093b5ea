"""Tasks: deliver one notification, sweep stuck deliveries, purge old events."""

import json
import logging
import threading
import uuid
from datetime import UTC, datetime

import redis
from celery.exceptions import MaxRetriesExceededError, Reject
from celery.signals import worker_process_init

from shared.attempt_rules import Outcome
from shared.db import Database
from shared.logs import configure_logging
from shared.metrics import MetricsRecorder
from shared.outbox import leave_for_sweep, send_after_commit
from shared.sender import Sender
from shared.services.delivery import Deliverer
from shared.services.health import HealthTracker
from shared.services.retention import purge
from shared.services.sweep import sweep
from shared.store.stores import delivery_store
from shared.throttle import WebhookLimiter
from shared.tracing import tracing_for
from worker.celery_app import FIRST_QUEUE, RETRY_QUEUE, celery_app, settings
from worker.dispatch import DELIVER_TASK, SENT_AT, send_deliveries

log = logging.getLogger(__name__)
configure_logging(settings.log_level)


class _Resources:
    """The database, HTTP pool and caps of this worker process, made on first use (after any
    fork)."""

    db = None
    deliverer = None
    broker = None
    _lock = threading.Lock()

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
        # Claims and records go through the store (batched on PostgreSQL), so a few
        # connections serve all the threads: at most 16 per engine, 32 per worker process
        # (PostgreSQL allows ~100 across all processes).
        db = Database(
            settings.database_url,
            pool_size=8,
            prepared_statements=settings.database_prepared_statements,
        )
        cls.deliverer = Deliverer(
            store=delivery_store(db, settings),
            sender=Sender(settings),
            limiter=WebhookLimiter(
                settings.max_in_flight_per_webhook,
                settings.max_in_flight_per_host,
                settings.max_in_flight_slow,
            ),
            health=HealthTracker(db, settings),
            metrics=MetricsRecorder(settings.redis_url),
            tracing=tracing_for(settings, "worker"),
        )
        cls.db = db


@worker_process_init.connect
def _reset_after_fork(**_):
    _Resources.db = None  # get() then makes all of them anew in the child


@celery_app.task(name=DELIVER_TASK, bind=True, max_retries=settings.webhook_max_retries)
def deliver(self, delivery_id: str, webhook: str | None = None, host: str | None = None, **_):
    resources = _Resources.get()
    done = resources.deliverer.run(delivery_id, webhook, host)
    send_after_commit(resources.db, send_deliveries, done.to_send)
    if done.outcome != Outcome.RETRY:
        return done.outcome
    try:
        # The countdown the rules set, the same that the delivery's row now says it is due at.
        raise self.retry(
            countdown=done.retry_in,
            max_retries=settings.webhook_max_retries,
            queue=RETRY_QUEUE,
        )
    except MaxRetriesExceededError:
        # Celery's counter ran out but the database allows another attempt (this message was
        # re-sent by the sweep): leave the row pending for the sweep.
        leave_for_sweep(resources.db, [uuid.UUID(delivery_id)])
        return done.outcome
    except Reject:
        # The retry message could not be published (broker down); the sweep sends it later.
        leave_for_sweep(resources.db, [uuid.UUID(delivery_id)])
        raise


def _oldest_queued_at(broker: redis.Redis) -> datetime | None:
    """When the oldest delivery message still queued in Redis was sent, or None when none is.

    A Kombu queue is a list, pushed on the left and popped on the right: its last element is
    the oldest message. A delivery enqueued before that moment is no longer in any queue.
    """
    oldest = None
    try:
        for queue in (FIRST_QUEUE, RETRY_QUEUE):
            raw = broker.lindex(queue, -1)
            if raw is None:
                continue
            sent_at = json.loads(raw).get("headers", {}).get(SENT_AT)
            if isinstance(sent_at, int | float):
                oldest = sent_at if oldest is None else min(oldest, sent_at)
    except (redis.RedisError, ValueError):
        return None  # unknown: the sweep then treats old pending deliveries as lost
    return None if oldest is None else datetime.fromtimestamp(oldest, UTC)


@celery_app.task(name="webhooks.sweep")
def sweep_deliveries() -> int:
    resources = _Resources.get()
    oldest_queued = _oldest_queued_at(resources.broker)
    with resources.db.transaction() as session:
        metrics = resources.deliverer.metrics
        outgoing = sweep(session, settings, oldest_queued, on_probe=metrics.probe_started)
    send_after_commit(resources.db, send_deliveries, outgoing)
    if outgoing:
        log.info("sweep re-sent %d deliveries", len(outgoing))
    return len(outgoing)


@celery_app.task(name="webhooks.purge")
def purge_events() -> int:
    # Batches of their own transactions, until done or the run's time is up (see retention).
    removed = purge(_Resources.get().db, settings)
    if removed:
        log.info("purged %d events older than %d days", removed, settings.retention_days)
    return removed
