"""Metrics that stay correct when web and workers are separate processes on separate machines.

Counters and the attempt-latency histogram are kept in Redis (every process adds to the same
hashes); the pending gauges are read from the database at scrape time. Each process sums its
samples in memory and adds them to Redis once a second, so recording costs no round trip on
the hot path. Recording never fails a delivery or a publish: a Redis error only costs samples.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select

from shared.db import Database
from shared.models import FINISHED, UNFINISHED, Delivery, DeliveryStatus, Webhook, WebhookStatus
from shared.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

PREFIX = "cloud-agent-webhooks:metrics:"
EVENTS, OUTCOMES, BUCKETS, LATENCY, PROBES = (
    PREFIX + k for k in ("events", "outcomes", "buckets", "lat", "probes")
)
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _bucket(seconds: float) -> str:
    for bound in BOUNDS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


class MetricsRecorder:
    FLUSH_SECONDS = 1.0

    def __init__(self, redis_url: str):
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self._lock = threading.Lock()
        self._pending = {
            EVENTS: Counter(),
            OUTCOMES: Counter(),
            BUCKETS: Counter(),
            PROBES: Counter(),
        }
        self._latency_sum = 0.0
        self._flusher: threading.Thread | None = None

    def events_published(self, types: list[str]) -> None:
        if not types:
            return
        with self._lock:
            self._pending[EVENTS].update(types)
        self._ensure_flusher()

    def probe_started(self) -> None:
        with self._lock:
            self._pending[PROBES]["total"] += 1
        self._ensure_flusher()

    def attempt_finished(self, duration_ms: float, outcome: str | None) -> None:
        """One attempt took `duration_ms`; `outcome` is set when the delivery ended."""
        seconds = duration_ms / 1000
        with self._lock:
            self._pending[BUCKETS][_bucket(seconds)] += 1
            self._latency_sum += seconds
            if outcome:
                self._pending[OUTCOMES][outcome] += 1
        self._ensure_flusher()

    def flush(self) -> None:
        """Add what this process counted since the last flush to the shared totals."""
        with self._lock:
            pending, self._pending = self._pending, {key: Counter() for key in self._pending}
            latency, self._latency_sum = self._latency_sum, 0.0
        if not any(pending.values()):
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key, counts in pending.items():
                for field_name, count in counts.items():
                    pipe.hincrby(key, field_name, count)
            if latency:
                pipe.hincrbyfloat(LATENCY, "sum", latency)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("metrics samples dropped: %s", type(exc).__name__)

    def _ensure_flusher(self) -> None:
        # Started on first use, so a process that forks after creating the recorder gets its
        # own thread.
        if self._flusher is None or not self._flusher.is_alive():
            with self._lock:
                if self._flusher is None or not self._flusher.is_alive():
                    self._flusher = threading.Thread(
                        target=self._flush_forever, name="metrics-flush", daemon=True
                    )
                    self._flusher.start()

    def _flush_forever(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.FLUSH_SECONDS):
            self.flush()


class ServiceCollector(Collector):
    """Renders the shared counters and the database gauges for one scrape."""

    def __init__(self, recorder: MetricsRecorder, db: Database):
        self.recorder = recorder
        self.db = db

    def collect(self):
        yield from self._counters()
        yield from self._gauges()

    def _counters(self):
        try:
            pipe = self.recorder.redis.pipeline(transaction=False)
            for key in (EVENTS, OUTCOMES, BUCKETS, LATENCY, PROBES):
                pipe.hgetall(key)
            events, outcomes, buckets, latency, probes = (
                {k.decode(): float(v) for k, v in result.items()} for result in pipe.execute()
            )
        except redis.RedisError:
            return
        published = CounterMetricFamily(
            "webhooks_events_published", "Events accepted, by type.", labels=["type"]
        )
        for event_type, count in sorted(events.items()):
            published.add_metric([event_type], count)
        yield published
        finished = CounterMetricFamily(
            "webhooks_deliveries", "Deliveries that ended, by outcome.", labels=["outcome"]
        )
        for outcome in FINISHED:
            finished.add_metric([outcome], outcomes.get(outcome, 0.0))
        yield finished
        cumulative, total = [], 0.0
        for bound in (*map(repr, BOUNDS), "+Inf"):
            total += buckets.get(bound, 0.0)
            cumulative.append((bound, total))
        yield CounterMetricFamily(
            "webhooks_probes",
            "Probes sent to failing webhooks.",
            value=probes.get("total", 0.0),
        )
        yield HistogramMetricFamily(
            "webhooks_attempt_duration_seconds",
            "Time of one delivery attempt, connect to response.",
            buckets=cumulative,
            sum_value=latency.get("sum", 0.0),
        )

    def _gauges(self):
        try:
            with self.db.session() as session:
                count, oldest = session.execute(
                    select(func.count(), func.min(Delivery.created_at)).where(
                        Delivery.status.in_(UNFINISHED)
                    )
                ).one()
                waiting = session.scalar(
                    select(func.count()).where(Delivery.status == DeliveryStatus.WAITING)
                )
                # The global and operations webhooks' rows count once they are not active.
                counted = or_(Webhook.wallet_id.is_not(None), Webhook.status != "active")
                by_status_query = (
                    select(Webhook.status, func.count()).where(counted).group_by(Webhook.status)
                )
                statuses = {status: n for status, n in session.execute(by_status_query)}
        except Exception:
            return
        yield GaugeMetricFamily(
            "webhooks_deliveries_waiting",
            "Deliveries waiting in the database for their webhook (circuit, Retry-After, cap).",
            value=waiting,
        )
        by_status = GaugeMetricFamily(
            "webhooks_by_status", "Webhooks by health status.", labels=["status"]
        )
        for status in WebhookStatus:
            by_status.add_metric([status.value], statuses.get(status.value, 0))
        yield by_status
        yield GaugeMetricFamily(
            "webhooks_deliveries_pending", "Deliveries not finished yet.", value=count
        )
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "webhooks_oldest_pending_delivery_age_seconds",
            "Age of the oldest unfinished delivery.",
            value=max(age, 0.0),
        )
