"""Publishing a state change from Python: the function in-process producers call.

    from shared.publishing import publish_event
    publish_event(db, settings, wallet_id, "ConnectionUpdated", data, dispatch=send_deliveries)

The event and its deliveries are committed first; only then are the tasks sent (`dispatch`,
e.g. `worker.dispatch.send_deliveries`). Without a dispatcher, or when the broker is down, the
deliveries wait for the next sweep: nothing committed is lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import update

from shared.db import Database
from shared.metrics import MetricsRecorder
from shared.models import Delivery
from shared.services.events import Outgoing, PublishedEvent, record_event
from shared.settings import Settings

log = logging.getLogger(__name__)

Dispatch = Callable[[Sequence[Outgoing]], None]


def publish_event(
    db: Database,
    settings: Settings,
    wallet_id: uuid.UUID,
    event_type: str,
    data: dict,
    dispatch: Dispatch | None = None,
    metrics: MetricsRecorder | None = None,
) -> PublishedEvent:
    # One atomic statement on PostgreSQL; one transaction on SQLite.
    with db.statements() as connection:
        published = record_event(
            connection, settings, wallet_id, event_type, data, enqueued=dispatch is not None
        )
    if dispatch is not None and published.deliveries:
        dispatch_or_leave_for_sweep(db, dispatch, published.deliveries)
    if metrics is not None:
        metrics.event_published(event_type)
    return published


def dispatch_or_leave_for_sweep(db: Database, dispatch: Dispatch, deliveries: Sequence[Outgoing]):
    try:
        dispatch(deliveries)
    except Exception as exc:
        log.warning(
            "could not send %d delivery tasks (%s); the sweep will send them",
            len(deliveries),
            type(exc).__name__,
        )
        leave_for_sweep(db, [delivery.id for delivery in deliveries])


def leave_for_sweep(db: Database, delivery_ids: Sequence[uuid.UUID]) -> None:
    """Mark deliveries as not sent: the next sweep sends their tasks."""
    with db.statements() as connection:
        connection.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids)).values(enqueued_at=None)
        )
