"""Spans of publishing and of each attempt, exported with OpenTelemetry's SDK over OTLP/HTTP to
OTEL_EXPORTER_OTLP_ENDPOINT. Imported only when that is set (`shared.tracing.tracing_for`).

Each process has a provider of its own (not the global one), with a batch processor: spans
leave in the background, never on a request's or an attempt's time. The SDK's own variables
(OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_*) apply as documented by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared import __version__
from shared.settings import Settings
from shared.tracing import AttemptTrace, PublishTrace, event_traceparent, valid_traceparent

_PROPAGATOR = TraceContextTextMapPropagator()


def _parent(traceparent: str | None) -> Context:
    """The context a span continues: the given trace, or none (a new trace)."""
    return _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else Context()


def _traceparent_of(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@dataclass
class _PublishSpan(PublishTrace):
    span: Span | None = None

    def published(self, event_ids: list[uuid.UUID], event_types: list[str]) -> None:
        self.span.set_attributes(
            {
                "webhooks.events.count": len(event_ids),
                "webhooks.event.ids": [str(event_id) for event_id in event_ids],
                "webhooks.event.types": sorted(set(event_types)),
            }
        )


@dataclass
class _AttemptSpan(AttemptTrace):
    span: Span | None = None

    def finished(self, status_code: int | None, error: str | None, duration_ms: float) -> None:
        self.span.set_attribute("webhooks.attempt.duration_ms", duration_ms)
        if status_code is not None:
            self.span.set_attribute("http.response.status_code", status_code)
        if error is not None or status_code is None or not 200 <= status_code < 300:
            why = error or f"HTTP {status_code}"
            self.span.set_attribute("error.type", why.split(":", 1)[0])
            self.span.set_status(Status(StatusCode.ERROR, why))
        self.span.end()


class ExportedTracing:
    """Spans recorded and exported; trace context continues through them."""

    def __init__(self, settings: Settings, process: str):
        resource = Resource.create(
            {
                "service.name": settings.otel_service_name,
                "service.version": __version__,
                "webhooks.process": process,
            }
        )
        self.provider = TracerProvider(resource=resource)
        # OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; traces go under /v1/traces.
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        self.tracer = self.provider.get_tracer("cloud-agent-webhooks", __version__)

    @contextmanager
    def publish(self, incoming: str | None, wallet_id: uuid.UUID | None) -> Iterator:
        attributes = {} if wallet_id is None else {"webhooks.wallet.id": str(wallet_id)}
        span = self.tracer.start_span(
            "publish",
            context=_parent(valid_traceparent(incoming)),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        try:
            yield _PublishSpan(_traceparent_of(span), span)
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def attempt(self, claim) -> AttemptTrace:
        span = self.tracer.start_span(
            "attempt",
            context=_parent(event_traceparent(claim.traceparent, claim.event_id)),
            kind=SpanKind.CLIENT,
            attributes={
                "webhooks.webhook.id": str(claim.webhook_id or ""),
                "webhooks.delivery.id": str(claim.id),
                "webhooks.event.id": str(claim.event_id),
                "webhooks.target": str(claim.target),
                "webhooks.attempt.round": claim.round,
                "webhooks.attempt.number": claim.number,
                "http.request.method": "POST",
                # The host only: a webhook URL's path or query may hold a tenant's token.
                "server.address": urlsplit(claim.url).hostname or "",
            },
        )
        return _AttemptSpan(_traceparent_of(span), span)

    def shutdown(self) -> None:
        """Export what is still buffered, then stop."""
        self.provider.shutdown()
