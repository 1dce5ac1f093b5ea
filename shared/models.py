"""The tables: tenancy (wallets, entities, API keys), webhooks, and the delivery outbox."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.timeutil import as_utc, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DEFAULT_WALLET_ID = uuid.UUID(int=0)
# The global webhook's row: it has no wallet, but a circuit like every webhook.
GLOBAL_WEBHOOK_ID = uuid.UUID("ffffffff-ffff-ffff-ffff-ffffffffffff")
# The operations webhook's row (OPERATIONS_WEBHOOK_URL): operational events go through it.
OPERATIONS_WEBHOOK_ID = uuid.UUID("ffffffff-ffff-ffff-ffff-fffffffffffe")


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands; stored as its value."""

    PENDING = "pending"  # owed an attempt: due at next_attempt_at
    WAITING = "waiting"  # owed an attempt, held in the database until its webhook can take it
    IN_FLIGHT = "in_flight"  # an attempt is running (claimed until lease_until)
    DELIVERED = "delivered"
    FAILED = "failed"  # its round's attempts are spent
    CANCELLED = "cancelled"  # its webhook was deleted


class Target(enum.StrEnum):
    """Who a delivery goes to; stored as its value."""

    WALLET = "wallet"  # a webhook of the event's wallet
    GLOBAL = "global"  # GLOBAL_WEBHOOK_URL, which receives every wallet's events
    OPERATIONS = "operations"  # OPERATIONS_WEBHOOK_URL, which receives operational events


def shown_webhook_id(webhook_id: uuid.UUID | None, target: str) -> uuid.UUID | None:
    """The id a webhook row goes by in answers and events: a wallet's row of the global
    webhook is shown as the global webhook itself (the event's wallet tells which)."""
    return GLOBAL_WEBHOOK_ID if target == Target.GLOBAL and webhook_id is not None else webhook_id


def global_webhook_id(wallet_id: uuid.UUID) -> uuid.UUID:
    """The row that holds one wallet's deliveries to the global webhook (its circuit, caps and
    waiting deliveries): each wallet has its own, so that what one wallet's events meet at the
    global receiver holds no other wallet's. GLOBAL_WEBHOOK_ID stands for all of them."""
    return uuid.uuid5(GLOBAL_WEBHOOK_ID, str(wallet_id))


# Deliveries the service still owes an attempt or an outcome.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.WAITING, DeliveryStatus.IN_FLIGHT)
# Deliveries that ended their round and may be redelivered.
FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
_FAILED = text("status = 'failed'")


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else as_utc(value)

    def process_result_value(self, value, dialect):
        return None if value is None else as_utc(value)


# BIGINT keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Wallet(Base):
    __tablename__ = "wallets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # sha256_hex of the BIP-32 seed given at creation, if any: two wallets never share a seed.
    # The seed itself is never stored.
    seed_digest: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)


class Entity(Base):
    __tablename__ = "entities"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128))
    wallet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wallets.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An API key, kept only as sha256_hex(salt + key)."""

    __tablename__ = "api_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("entities.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# The Redis epoch the last sweep saw (`coordination.liveness.epoch`); "" before the first.
BROKER_EPOCH = "broker_epoch"


class SystemValue(Base):
    """Values the service generates once and every process must agree on (the API key salt),
    or remembers across its processes (the broker's epoch)."""

    __tablename__ = "system_values"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Ordering(enum.StrEnum):
    """Whether a webhook's deliveries about one record go one at a time, in publish order."""

    NONE = "none"  # every delivery as soon as it can (the Identus agent's behaviour)
    RECORD = "record"  # one record's deliveries one after another, records in parallel


class WebhookStatus(enum.StrEnum):
    """A webhook's health, from its recent attempts."""

    ACTIVE = "active"  # attempts go out
    FAILING = "failing"  # its circuit is open: deliveries wait, probes go out
    DISABLED = "disabled"  # failing for too long: nothing goes out until it is enabled


class Webhook(Base):
    """A wallet's webhook, or a row of the global or operations webhook, and its health.

    `target` says which: a wallet's webhooks are `wallet`; each wallet also has a `global`
    row (`global_webhook_id`) for its deliveries to GLOBAL_WEBHOOK_URL; the rows with no
    wallet stand for the global webhook as a whole and for the operations webhook.
    """

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    wallet_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("wallets.id"), index=True)
    target: Mapped[str] = mapped_column(String(16), default=Target.WALLET)
    url: Mapped[str] = mapped_column(Text)
    # Secrets are stored sealed (shared.secret_box): the values of custom_headers, `secret`
    # and `previous_secret` (a whsec_ HMAC secret, or a whsk_ Ed25519 private key), the
    # password or client secret inside `auth`, and the client key inside `tls`.
    custom_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    event_types: Mapped[list | None] = mapped_column(JSON, nullable=True)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The whpk_ key receivers verify v1a signatures with; NULL: signed with HMAC (v1).
    public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # How the request authenticates: {"type": "basic", ...} or {"type": "oauth2", ...}.
    auth: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Mutual TLS and the CA trusted for this receiver: {"clientCertificate", "clientKey", ...}.
    tls: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=WebhookStatus.ACTIVE)
    status_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why, when disabled
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # While failing: when the next probe may go out, the interval that grows after each failed
    # probe, and the delivery that is the probe while it runs.
    next_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    probe_interval: Mapped[float | None] = mapped_column(Float, nullable=True)
    probe_delivery_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # Retry-After: no attempt before this time.
    hold_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ordering: Mapped[str] = mapped_column(String(16), default=Ordering.NONE)
    # Deliveries per second the receiver asked for, across every worker; None: no limit.
    rate_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)

    # The operator's console lists the oldest webhooks of all wallets.
    __table_args__ = (Index("ix_webhooks_created_at_id", "created_at", "id"),)


class Event(Base):
    """A published state change; `body` holds the exact bytes every target receives."""

    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # None: an operational event about the global or the operations webhook.
    wallet_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("wallets.id"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The W3C trace context the producer sent with the event (version 00, 55 characters), or
    # the publish span's; every attempt of every round continues it. None: none was sent.
    traceparent: Mapped[str | None] = mapped_column(String(55), nullable=True)


class Delivery(Base):
    """One (event, target) pair: the outbox row a Celery task carries by id.

    `attempts` counts the attempts of the current `round`; a redelivery starts a new round.
    The database, not Celery's retry counter, decides whether another attempt is allowed.
    """

    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    wallet_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    webhook_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="SET NULL"), nullable=True, index=True
    )
    target: Mapped[str] = mapped_column(String(16))  # a Target
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    round: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # For a webhook with record ordering: the record the event is about (its type and id);
    # the delivery starts only after the earlier ones with the same key ended. NULL otherwise.
    record_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    # With a record key: its place in publish order, from a database sequence (PostgreSQL) so
    # that the clocks of the web hosts do not decide it.
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The worker process running the attempt in flight: when it is no longer alive, the sweep
    # declares the attempt lost at once instead of waiting for its lease.
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_deliveries_event_id", "event_id"),
        # The operator's delivery log, newest first, reads this index from its end.
        Index("ix_deliveries_created_at", "created_at"),
        Index("ix_deliveries_wallet_id_created_at", "wallet_id", "created_at"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_webhook_id_status_created_at", "webhook_id", "status", "created_at"),
        Index("ix_deliveries_webhook_id_record_key_seq", "webhook_id", "record_key", "seq"),
        # The failed ones (about one in a hundred), newest first, for `status=failed`.
        Index(
            "ix_deliveries_failed_created_at",
            "created_at",
            postgresql_where=_FAILED,
            sqlite_where=_FAILED,
        ),
        Index(
            "ix_deliveries_failed_wallet_id_created_at",
            "wallet_id",
            "created_at",
            postgresql_where=_FAILED,
            sqlite_where=_FAILED,
        ),
    )


class IdempotencyKey(Base):
    """A publish request's Idempotency-Key and its answer, kept IDEMPOTENCY_TTL.

    `scope` is the caller's wallet (the operator has a scope of its own). The primary key makes
    a second request with the same key wait for the first one's transaction, then read it.
    """

    __tablename__ = "idempotency_keys"

    scope: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256_hex of the request
    response: Mapped[str] = mapped_column(Text)  # the 202's body, byte for byte
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    round: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    # Attempts are written in time order: a BRIN index finds the last hour's few block ranges
    # (the console's overview) at almost no cost per attempt written.
    __table_args__ = (Index("ix_attempts_started_at", "started_at", postgresql_using="brin"),)


class ConsoleAccess(enum.StrEnum):
    """How a console session was opened; stored as its value."""

    OPERATOR = "operator"  # with ADMIN_TOKEN
    TENANT = "tenant"  # with a tenant's API key
    LINK = "link"  # with a single-use link the operator made for one wallet


class ConsoleLink(Base):
    """A single-use link to one wallet's console (`POST /console/links`).

    Only the token's SHA-256 is kept: the link itself is shown once, to the operator.
    """

    __tablename__ = "console_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    wallet_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("wallets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ConsoleSession(Base):
    """A signed-in console. The browser's cookie holds the token, signed with SECRET_KEY; the
    database holds its SHA-256 only, so a dump cannot make a cookie, and signing out (deleting
    the row) ends every copy of it."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access: Mapped[str] = mapped_column(String(16))  # a ConsoleAccess
    # LINK: the wallet it opens. TENANT: found again from the key on every request.
    wallet_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("wallets.id", ondelete="CASCADE"), nullable=True
    )
    # What is checked again on every request: the tenant's stored key hash (a removed key ends
    # the session), or a keyed digest of ADMIN_TOKEN (a changed token ends it).
    credential: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
