"""What the console's pages show that the API's shapes do not: masked request headers, times
for people, filters read from a query string, and the last hour as small bar charts."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.attempt_rules import shown_headers
from shared.models import Delivery, DeliveryStatus, Webhook
from shared.services.delivery_log import Count
from shared.services.overview import LastHour
from shared.settings import Settings
from shared.timeutil import as_utc
from shared.tracing import event_traceparent

MASK = "•••••• (hidden)"
STATUSES = [status.value for status in DeliveryStatus]


def when(moment: datetime | None) -> str:
    return "—" if moment is None else as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def counted(count: Count) -> str:
    """1,000+ when counting stopped at its cap."""
    return f"{count.value:,}" + ("+" if count.at_least else "")


def pretty_json(body: str | None) -> str:
    if body is None:
        return "(the event was removed by the retention purge)"
    return json.dumps(json.loads(body), indent=2, ensure_ascii=False)


def headers_sent(
    delivery: Delivery, webhook: Webhook | None, settings: Settings, traceparent: str | None
) -> list:
    """The request headers of each attempt, as the attempt's rules make them, with the values
    of custom headers, credentials and signatures hidden. `traceparent`: the event's, stored."""
    context = event_traceparent(traceparent, delivery.event_id)
    if settings.otel_exporter_otlp_endpoint:
        # Each attempt is a span of the trace, whose id the receiver gets as the parent's.
        _, trace_id, _, flags = context.split("-")
        context = f"00-{trace_id}-(the attempt's span id)-{flags}"
    return shown_headers(delivery, webhook, settings, MASK, context)


def new_secret(webhook: Webhook) -> dict:
    """What the page after a registration or rotation shows once: the new v1 secret, or the
    v1a public key (the private key is never shown)."""
    return {
        "id": webhook.id,
        "url": webhook.url,
        "secret": webhook.new_secret,
        "public_key": webhook.public_key,
        "previous_expires": webhook.previous_secret_expires_at,
    }


def parse_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def parse_time(value: str | None) -> datetime | None:
    """A datetime-local field's value, read as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().removesuffix("Z"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_custom_headers(text: str) -> dict[str, str]:
    """`Name: value` lines; a line without a colon is kept as a name with an empty value, so
    the service's own check refuses it with its usual message."""
    headers = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return headers


@dataclass
class Chart:
    title: str
    values: list[float]
    unit: str
    width: int = 300
    height: int = 60

    @property
    def top(self) -> float:
        return max(self.values + [1])

    def bars(self) -> list[tuple[float, float, float, float]]:
        """x, y, width, height of each minute's bar."""
        step = self.width / len(self.values)
        out = []
        for index, value in enumerate(self.values):
            height = 0 if value == 0 else max(1.0, self.height * value / self.top)
            out.append((round(index * step, 2), round(self.height - height, 2), step * 0.8, height))
        return out

    @property
    def total(self) -> float:
        return sum(self.values)


def charts(hour: LastHour) -> list[Chart]:
    rates = [
        round(100 * failed / total, 1) if total else 0
        for failed, total in zip(hour.failed_attempts, hour.attempts, strict=True)
    ]
    return [
        Chart("Events published per minute", hour.events, "events"),
        Chart("Deliveries created per minute", hour.deliveries, "deliveries"),
        Chart("Attempts per minute", hour.attempts, "attempts"),
        Chart("Failed attempts, % per minute", rates, "%"),
    ]


def minute_labels(hour: LastHour) -> tuple[str, str]:
    return hour.start.strftime("%H:%M"), (hour.start + timedelta(minutes=59)).strftime("%H:%M")
