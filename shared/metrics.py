"""Metrics that stay correct when web and workers are separate processes on separate machines.

Counters and the attempt-latency histogram are kept in Redis (every process adds to the same
hashes); the pending gauges are read from the database at scrape time. Recording never fails
a delivery or a publish: a Redis error only costs the sample.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from shared.db import Database
from shared.models import Delivery
from shared.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

PREFIX = "cloud-agent-webhooks:metrics:"
EVENTS, OUTCOMES, BUCKETS, LATENCY = (PREFIX + k for k in ("events", "outcomes", "buckets", "lat"))
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _bucket(seconds: float) -> str:
    for bound in BOUNDS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


class MetricsRecorder:
    def __init__(self, redis_url: str):
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)

    def event_published(self, event_type: str) -> None:
        self._safely(lambda pipe: pipe.hincrby(EVENTS, event_type, 1))

    def attempt_finished(self, duration_ms: float, outcome: str | None) -> None:
        """One attempt took `duration_ms`; `outcome` is set when the delivery ended."""
        seconds = duration_ms / 1000

        def record(pipe):
            pipe.hincrby(BUCKETS, _bucket(seconds), 1)
            pipe.hincrbyfloat(LATENCY, "sum", seconds)
            if outcome:
                pipe.hincrby(OUTCOMES, outcome, 1)

        self._safely(record)

    def _safely(self, commands) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            commands(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("metrics sample dropped: %s", type(exc).__name__)


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
            for key in (EVENTS, OUTCOMES, BUCKETS, LATENCY):
                pipe.hgetall(key)
            events, outcomes, buckets, latency = (
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
        for outcome in ("delivered", "failed"):
            finished.add_metric([outcome], outcomes.get(outcome, 0.0))
        yield finished
        cumulative, total = [], 0.0
        for bound in (*map(repr, BOUNDS), "+Inf"):
            total += buckets.get(bound, 0.0)
            cumulative.append((bound, total))
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
                        Delivery.status.in_(("pending", "in_flight"))
                    )
                ).one()
        except Exception:
            return
        yield GaugeMetricFamily(
            "webhooks_deliveries_pending", "Deliveries not finished yet.", value=count
        )
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "webhooks_oldest_pending_delivery_age_seconds",
            "Age of the oldest unfinished delivery.",
            value=max(age, 0.0),
        )
