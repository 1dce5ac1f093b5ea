"""A real OTLP/HTTP endpoint for tests: decodes the trace exports it receives (protobuf, as
OpenTelemetry's exporter sends them) and keeps their spans."""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int
    attributes: dict
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict
    duration_ms: float


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(pairs) -> dict:
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpCollector:
    def __init__(self, port: int = 0):
        self.spans: list[ReceivedSpan] = []
        self._arrived = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector._record(self.path, body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(self, path: str, body: bytes) -> None:
        assert path == "/v1/traces", path
        request = ExportTraceServiceRequest.FromString(body)
        received = [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                kind=span.kind,
                attributes=_attributes(span.attributes),
                status_code=span.status.code,
                status_message=span.status.message,
                resource=_attributes(resource_spans.resource.attributes),
                duration_ms=(span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._arrived:
            self.spans.extend(received)
            self._arrived.notify_all()

    def wait_for(self, condition, what: str, timeout: float = 20.0) -> list[ReceivedSpan]:
        """The spans that satisfy `condition(span)`, once there is at least one."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [span for span in self.spans if condition(span)]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    break
                self._arrived.wait(left)
        assert found, f"no span {what} within {timeout}s: {[s.name for s in self.spans]}"
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
