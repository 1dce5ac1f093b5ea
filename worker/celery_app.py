"""The Celery application, configured from the shared settings.

celery -A worker.celery_app worker     celery -A worker.celery_app beat
"""

import gc
import logging

from celery import Celery
from celery.signals import after_setup_logger, worker_process_init, worker_ready
from kombu import Exchange, Queue

from shared.coordination import queues
from shared.settings import settings_or_exit

settings = settings_or_exit()

celery_app = Celery("cloud_agent_webhooks", broker=settings.redis_url, include=["worker.tasks"])
if settings.redis_url.startswith(("redis://", "rediss://")):
    celery_app.conf.broker_transport = "worker.broker:Transport"
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # Every queue on the anonymous exchange: a message goes straight onto its queue's list,
    # with no binding to look up, so that publishing works the same after Redis was emptied.
    # A worker consumes them all (no --queues needed), taking from the non-empty ones in turn.
    task_queues=[Queue(name, Exchange(""), routing_key=name) for name in queues.ALL],
    task_default_queue=queues.FIRST,
    task_default_exchange="",
    task_default_routing_key=queues.FIRST,
    # A worker fetches no more messages than it has threads: a message of a tenant without a
    # backlog then waits behind no one's fetched messages, and one that a killed worker held
    # had a thread, so it was in flight (and is found by the heartbeat) or just fetched.
    worker_prefetch_multiplier=1,
    worker_eta_task_limit=5000,
    worker_enable_soft_shutdown_on_idle=True,
    worker_soft_shutdown_timeout=10.0,
    # Threads cannot be cancelled (the option only logs errors with this pool); the database
    # lease already makes a task that runs on after a broker loss harmless.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Nothing uses `celery inspect/control`, and its pub/sub channel is what crashed the
    # worker when Redis restarted (Celery 5.7.0, closing the channel twice).
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        # The database, not the broker, knows what is still owed: every delivery row stays
        # pending or in flight until an attempt is recorded, and the beat sweep re-sends what
        # no message carries any more. Kombu's acknowledgement emulation on Redis (an "unacked"
        # hash and index written on every fetch and cleared on every ack) would only duplicate
        # that bookkeeping on every message (BENCHMARKS.md has its cost). Without it a message
        # is gone from Redis once fetched; a worker that stops cleanly puts back what it
        # holds, and what a killed worker held comes back through the sweep.
        "ack_emulation": False,
        "socket_timeout": 10,
        "socket_connect_timeout": 3,
        "health_check_interval": 25,
    },
    # The API must answer quickly even when Redis is down: the sweep sends what failed.
    task_publish_retry_policy={
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    },
    # Housekeeping travels on the short queue, so that a backlog of deliveries does not hold
    # the sweep back; a sweep that still found no worker for a minute is dropped (the next one
    # does the same work: a pile of stale sweeps run back to back would only repeat it).
    beat_schedule={
        "sweep": {
            "task": "webhooks.sweep",
            "schedule": settings.sweep_interval,
            "options": {"queue": queues.RETRY, "expires": max(60.0, settings.sweep_interval)},
        },
        "purge": {
            "task": "webhooks.purge",
            # Each run purges for up to RUN_SECONDS, so runs never overlap; how far that keeps
            # ahead of ingest is measured in BENCHMARKS.md (scenario purge).
            "schedule": 60.0,
            "options": {"queue": queues.RETRY, "expires": 60.0},
        },
    },
)


@after_setup_logger.connect
def _quiet_per_task_lines(**_):
    # "Task received" and "Task succeeded" for every delivery cost CPU and drown the log;
    # failures are still logged, and the delivery log in the database has every attempt.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_ready.connect
@worker_process_init.connect
def _freeze_startup_objects(**_):
    # Everything loaded at start lives as long as the process; leaving it out of the garbage
    # collector's full passes keeps them from pausing deliveries for tens of milliseconds.
    gc.freeze()
