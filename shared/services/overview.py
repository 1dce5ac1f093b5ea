"""Read-only queries behind the console: who a stored key hash belongs to, a stored event,
wallets with their webhooks, and the last hour minute by minute."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import ApiKey, Attempt, Delivery, DeliveryStatus, Entity, Event, Wallet, Webhook
from shared.services.delivery_log import COUNT_CAP, Count
from shared.store.dialect import minute_of
from shared.timeutil import as_utc

MINUTES = 60


def wallet_for_key_hash(session: Session, key_hash: str) -> uuid.UUID | None:
    """The wallet of the entity holding this key hash, or None once the key is removed."""
    return session.scalar(
        select(Entity.wallet_id)
        .join(ApiKey, ApiKey.entity_id == Entity.id)
        .where(ApiKey.key_hash == key_hash)
    )


def stored_event(session: Session, event_id: uuid.UUID):
    """The event's body and trace context (`body`, `traceparent`), or None once purged."""
    return session.execute(
        select(Event.body, Event.traceparent).where(Event.id == event_id)
    ).first()


def wallets_with_webhooks(session: Session) -> list[tuple[Wallet | None, list[Webhook]]]:
    """Every wallet with its webhooks, oldest first; the global webhook under None, if any."""
    webhooks: dict[uuid.UUID | None, list[Webhook]] = {}
    for webhook in session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id)):
        webhooks.setdefault(webhook.wallet_id, []).append(webhook)
    wallets = session.scalars(select(Wallet).order_by(Wallet.created_at, Wallet.id)).all()
    listed: list[tuple[Wallet | None, list[Webhook]]] = [
        (wallet, webhooks.get(wallet.id, [])) for wallet in wallets
    ]
    if None in webhooks:
        listed.append((None, webhooks[None]))
    return listed


def first_webhooks(session: Session, limit: int) -> list[Webhook]:
    """The `limit` oldest webhooks of all wallets together, the global and operations rows
    included."""
    return list(
        session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id).limit(limit))
    )


@dataclass
class LastHour:
    start: datetime  # the first minute shown
    events: list[int]  # per minute, oldest first
    deliveries: list[int]
    attempts: list[int]
    failed_attempts: list[int]
    waiting: Count  # now
    pending: Count  # now, in flight included

    @property
    def failure_rate(self) -> float | None:
        total = sum(self.attempts)
        return None if total == 0 else sum(self.failed_attempts) / total


def last_hour(session: Session, now: datetime) -> LastHour:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    conn = session.connection()
    failed = (
        (Attempt.status_code.is_(None)) | (Attempt.status_code < 200) | (Attempt.status_code > 299)
    )

    def per_minute(column, *where) -> list[int]:
        bucket = minute_of(conn, column)
        rows = session.execute(
            select(bucket, func.count()).where(column >= start, *where).group_by(bucket)
        ).all()
        counts = [0] * MINUTES
        for bucket, count in rows:
            index = int((_parse(bucket) - start).total_seconds() // 60)
            if 0 <= index < MINUTES:
                counts[index] += count
        return counts

    def count(*where) -> Count:
        # Capped: a backlog of millions costs the page no more than a thousand rows.
        first = select(Delivery.id).where(*where).limit(COUNT_CAP + 1)
        counted = session.scalar(select(func.count()).select_from(first.subquery()))
        return Count(min(counted, COUNT_CAP), counted > COUNT_CAP)

    return LastHour(
        start=start,
        events=per_minute(Event.created_at),
        deliveries=per_minute(Delivery.created_at),
        attempts=per_minute(Attempt.started_at),
        failed_attempts=per_minute(Attempt.started_at, failed),
        waiting=count(Delivery.status == DeliveryStatus.WAITING),
        pending=count(Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT))),
    )


def _parse(bucket) -> datetime:
    if isinstance(bucket, str):
        bucket = datetime.fromisoformat(bucket)
    return as_utc(bucket)
