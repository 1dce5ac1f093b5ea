"""Trace context from the producer's request to the receiver (W3C `traceparent`).

A producer's `traceparent` on `POST /events` is stored with each event it publishes, so every
attempt of every round (retries, the sweep's re-sends, redeliveries) sends the receiver a
`traceparent` of the same trace. Without one the service starts a trace: the publish span's
when spans are exported, else one whose trace id is the event's id.

Spans (publish, and each attempt) are recorded and exported only when
OTEL_EXPORTER_OTLP_ENDPOINT is set (`shared.tracing_export`). Otherwise this module is all
there is: no OpenTelemetry import, no span objects, a stored string passed on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from shared.settings import Settings

TRACEPARENT = "traceparent"
# version-traceid-parentid-flags, lowercase hex; a later version may append fields.
_W3C = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16


def valid_traceparent(value: str | None) -> str | None:
    """A producer's `traceparent` as version 00, or None when absent or invalid (the W3C rule:
    an invalid one is ignored and a new trace starts)."""
    if not value:
        return None
    match = _W3C.match(value.strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if parent_id == _ZERO_PARENT:
        return None
    return f"00-{trace_id}-{parent_id}-{flags}"


def event_traceparent(stored: str | None, event_id: uuid.UUID) -> str:
    """The event's trace context: the one stored with it, or (none was sent, none recorded) a
    trace whose id is the event's id, not sampled since nothing was recorded."""
    if stored:
        return stored
    return f"00-{event_id.hex}-{event_id.hex[16:]}-00"


@dataclass
class PublishTrace:
    """What publishing stores with its events; `published` describes them to the span."""

    traceparent: str | None

    def published(self, event_ids: list[uuid.UUID], event_types: list[str]) -> None:
        pass


@dataclass
class AttemptTrace:
    """What an attempt sends as `traceparent`; `finished` ends its span."""

    traceparent: str

    def finished(self, status_code: int | None, error: str | None, duration_ms: float) -> None:
        pass


class NoTracing:
    """Nothing is recorded or exported: trace context passes through unchanged."""

    @contextmanager
    def publish(self, incoming: str | None, wallet_id: uuid.UUID | None) -> Iterator:
        yield PublishTrace(valid_traceparent(incoming))

    def attempt(self, claim) -> AttemptTrace:
        return AttemptTrace(event_traceparent(claim.traceparent, claim.event_id))

    def shutdown(self) -> None:
        pass


def tracing_for(settings: Settings, process: str):
    """Spans exported to OTEL_EXPORTER_OTLP_ENDPOINT when it is set, else NoTracing."""
    if settings.otel_exporter_otlp_endpoint is None:
        return NoTracing()
    from shared.tracing_export import ExportedTracing  # the SDK loads only when exporting

    return ExportedTracing(settings, process)
