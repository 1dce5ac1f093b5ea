"""Conditions on a delivery row that several statements share: whether it is due, whether its
webhook takes attempts now, whether its record lets it start, and whether an attempt still owns
it. Each is written once, so the claim and the statements that park or release deliveries
always agree."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from shared.models import UNFINISHED, Delivery, DeliveryStatus, Webhook, WebhookStatus


def of_webhook(column):
    """A column of the delivery's webhook, as a scalar subquery."""
    return select(column).where(Webhook.id == Delivery.webhook_id).scalar_subquery()


# What a delivery's task message carries (`rows.Outgoing`), read with the row.
TO_SEND = (
    Delivery.id,
    Delivery.url,
    Delivery.webhook_id,
    Delivery.wallet_id,
    func.coalesce(of_webhook(Webhook.rate_limit), 0).label("rate_limit"),
)


# The delivery's webhook takes attempts: it exists (a deleted one's deliveries are never sent),
# its circuit is closed and no Retry-After holds it; or this delivery is its probe.
WEBHOOK_OPEN = exists().where(
    Webhook.id == Delivery.webhook_id,
    or_(
        and_(
            Webhook.status == WebhookStatus.ACTIVE,
            or_(Webhook.hold_until.is_(None), Webhook.hold_until <= bindparam("now")),
        ),
        and_(Webhook.probe_delivery_id == Delivery.id, Webhook.status == WebhookStatus.FAILING),
    ),
)
DUE = (
    Delivery.status == DeliveryStatus.PENDING,
    Delivery.attempts < bindparam("max_attempts"),
    Delivery.next_attempt_at <= bindparam("due_by"),
)
# Per-record order: a delivery with a record key starts only once every earlier delivery of the
# same webhook and record has ended. "Earlier" is publish order: its `seq`, drawn from one
# database sequence when the event is stored (in the order given, for a batch).
_earlier = aliased(Delivery, name="earlier")
RECORD_FREE = or_(
    Delivery.record_key.is_(None),
    ~exists().where(
        _earlier.webhook_id == Delivery.webhook_id,
        _earlier.record_key == Delivery.record_key,
        # Each status its own comparison, not an IN list: the statement's text is then fixed
        # when it is compiled (see dialect.CompiledOnce).
        or_(*(_earlier.status == status for status in UNFINISHED)),
        _earlier.seq < Delivery.seq,
    ),
)
CLAIMABLE = (*DUE, WEBHOOK_OPEN, RECORD_FREE)
# Why a delivery of an ordered record waits (its claim parks it, or its publish stores it so).
BEHIND_RECORD = "waiting: behind an earlier event of the same record"

# An UPDATE of a claimed row that matches only while the given attempt still owns it.
STILL_CLAIMED = update(Delivery).where(
    Delivery.id == bindparam("b_delivery_id"),
    Delivery.status == DeliveryStatus.IN_FLIGHT,
    Delivery.round == bindparam("b_round"),
    Delivery.attempts == bindparam("b_number"),
)


def owner_params(delivery_id: uuid.UUID, round_: int, number: int) -> dict:
    """What identifies the attempt that owns a claimed row (for `STILL_CLAIMED`)."""
    return {"b_delivery_id": delivery_id, "b_round": round_, "b_number": number}
