"""The delivery log a tenant or the operator reads, and redelivery."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.models import FINISHED, GLOBAL_WEBHOOK_ID, Attempt, Delivery, Target
from shared.store import deliveries
from shared.timeutil import utcnow


def _visible(query, wallet_id: uuid.UUID | None):
    """Tenants see their wallet's webhooks' deliveries; the operator (None) sees all."""
    if wallet_id is None:
        return query
    return query.where(Delivery.wallet_id == wallet_id, Delivery.target == Target.WALLET)


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    webhook_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    created_since: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Count:
    """How many deliveries match, counted up to a cap: `at_least` means more than `value`."""

    value: int
    at_least: bool


# Counting stops here, so that a page costs the same on a table of any length.
COUNT_CAP = 1000


def _matching(wallet_id: uuid.UUID | None, filters: DeliveryFilter):
    query = _visible(select(Delivery), wallet_id)
    if filters.created_since:
        query = query.where(Delivery.created_at >= filters.created_since)
    if filters.created_before:
        query = query.where(Delivery.created_at < filters.created_before)
    if filters.status:
        query = query.where(Delivery.status == filters.status)
    if filters.webhook_id == GLOBAL_WEBHOOK_ID:  # every wallet's row of it
        query = query.where(Delivery.target == Target.GLOBAL)
    elif filters.webhook_id:
        query = query.where(Delivery.webhook_id == filters.webhook_id)
    if filters.event_id:
        query = query.where(Delivery.event_id == filters.event_id)
    return query


def list_deliveries(
    session: Session,
    wallet_id: uuid.UUID | None,
    offset: int,
    limit: int,
    filters: DeliveryFilter = DeliveryFilter(),
) -> tuple[list[Delivery], bool]:
    """A page of deliveries, newest first, and whether more follow (no count is needed)."""
    rows = session.scalars(
        _matching(wallet_id, filters)
        .order_by(Delivery.created_at.desc(), Delivery.id)
        .offset(offset)
        .limit(limit + 1)
    ).all()
    return list(rows[:limit]), len(rows) > limit


def count_deliveries(
    session: Session,
    wallet_id: uuid.UUID | None,
    filters: DeliveryFilter = DeliveryFilter(),
    cap: int = COUNT_CAP,
) -> Count:
    """How many deliveries match, reading at most `cap` + 1 of them."""
    first = _matching(wallet_id, filters).with_only_columns(Delivery.id).limit(cap + 1)
    counted = session.scalar(select(func.count()).select_from(first.subquery()))
    return Count(min(counted, cap), counted > cap)


def get_delivery(session: Session, wallet_id: uuid.UUID | None, delivery_id: uuid.UUID):
    delivery = session.scalar(
        _visible(select(Delivery), wallet_id).where(Delivery.id == delivery_id)
    )
    if delivery is None:
        raise NotFound(f"There is no delivery with id {delivery_id}.")
    return delivery


def attempts_of(session: Session, delivery_id: uuid.UUID) -> list[Attempt]:
    return list(
        session.scalars(
            select(Attempt)
            .where(Attempt.delivery_id == delivery_id)
            .order_by(Attempt.round, Attempt.number, Attempt.id)
        )
    )


def redeliver(session: Session, wallet_id: uuid.UUID | None, delivery_id: uuid.UUID) -> Delivery:
    """Start a fresh round of attempts with the same event id and bytes."""
    delivery = get_delivery(session, wallet_id, delivery_id)
    if delivery.target == Target.WALLET and delivery.webhook_id is None:
        raise Conflict("The webhook of this delivery was deleted.")
    if delivery.status not in FINISHED:
        raise Conflict(
            f"The delivery is {delivery.status}; only a finished one can be redelivered."
        )
    if not deliveries.start_round(session.connection(), delivery_id, delivery.round, utcnow()):
        raise Conflict("Another redelivery of this delivery has just started.")
    session.refresh(delivery)
    # Allowed, but a receiver that keeps each record's state would be moved back by it.
    delivery.out_of_order = deliveries.later_of_record(session.connection(), delivery)
    delivery.note = OUT_OF_ORDER if delivery.out_of_order else None
    return delivery


OUT_OF_ORDER = (
    "out of order: a later event of the same record was published to this webhook; this "
    "one arrives after it"
)
