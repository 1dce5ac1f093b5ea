"""The rows that cross the store's border, each with its fields named.

Statements return these rather than tuples, so a reader never counts columns to know what a
value is, and adding a column is a change in one place.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from shared.models import DeliveryStatus, Target
from shared.throttle import host_key


class Outgoing(NamedTuple):
    """A delivery whose task is to be sent: its id, its webhook, where it goes, and whose it is
    (the wallet decides its place among the queues, see `shared.lanes`)."""

    id: uuid.UUID
    url: str
    webhook_id: uuid.UUID | None
    wallet_id: uuid.UUID | None
    # The webhook's deliveries per second (0: no limit), or None when the statement did not
    # read it (the worker then reads it itself).
    rate_limit: int | None = None
    slot: str | None = None  # a slot of the webhook handed to this delivery (coordination.slots)

    @property
    def host(self) -> str:
        """scheme://host:port (no path): what a worker applies the per-host cap to."""
        return host_key(self.url)

    @classmethod
    def of(cls, row) -> Outgoing:
        """From a result row (or a Delivery) with `id`, `url`, `webhook_id`, `wallet_id` and,
        where it was read, `rate_limit`."""
        return cls(row.id, row.url, row.webhook_id, row.wallet_id, getattr(row, "rate_limit", None))


@dataclass(frozen=True)
class Claim:
    """A delivery taken for one attempt, and what its webhook says about the request.

    The attempt's rules (`shared.attempt_rules`) turn it into the request to send.
    """

    id: uuid.UUID
    webhook_id: uuid.UUID | None
    round: int
    number: int  # this attempt's number in its round, from 1
    event_id: uuid.UUID
    target: Target
    url: str
    body: str
    custom_headers: dict | None  # values sealed (shared.secret_box)
    secret: str | None  # sealed: a whsec_ HMAC secret or a whsk_ Ed25519 key
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    record_key: str | None  # set when its webhook keeps each record's order
    auth: dict | None = None  # basic or oauth2, its secret sealed (shared.receiver_auth)
    tls: dict | None = None  # client certificate, sealed key, CA (shared.tls_material)
    traceparent: str | None = None  # the event's trace context, as stored with it


@dataclass(frozen=True)
class FinishedAttempt:
    """One attempt that ended, and where it leaves its delivery."""

    delivery_id: uuid.UUID
    round: int
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    status: DeliveryStatus  # the delivery's status after this attempt
    retry_at: datetime | None  # when status is pending: the next attempt's time
    webhook_id: uuid.UUID | None = None  # a success of this webhook ends its run of failures


@dataclass(frozen=True)
class NewEvent:
    id: uuid.UUID
    wallet_id: uuid.UUID
    type: str
    body: str
    created_at: datetime
    notified: bool  # False: stored and sent to no one
    enqueued: bool  # the caller sends the tasks at once; otherwise the sweep does
    global_url: str | None
    record_key: str | None = None  # the record it is about, for webhooks with record ordering
    global_ordered: bool = False  # the global webhook keeps each record's order
    traceparent: str | None = None  # the producer's trace context (W3C), or the publish span's


@dataclass(frozen=True)
class NewKey:
    """An idempotency key to take, with the answer it will replay."""

    scope: uuid.UUID
    key: str
    request_hash: str
    response: str
    created_at: datetime
    expired_before: datetime  # a key stored before this time is free again


class StoredKey(NamedTuple):
    request_hash: str
    response: str
