"""Sending delivery tasks once their rows are committed: the one way every caller does it.

Tasks go out only after the commit, so a worker never looks for a row that is not there yet.
When the broker cannot take them, the deliveries are marked as not sent and the next sweep
sends them: nothing committed is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from shared.db import Database
from shared.store import deliveries as stored
from shared.store.rows import Outgoing

log = logging.getLogger(__name__)

Dispatch = Callable[[Sequence[Outgoing]], None]


def send_after_commit(db: Database, dispatch: Dispatch | None, outgoing: Sequence[Outgoing]):
    """Send the tasks of these committed deliveries (with no dispatcher, the sweep sends them)."""
    if not outgoing or dispatch is None:
        return
    try:
        dispatch(outgoing)
    except Exception as exc:
        log.warning(
            "could not send %d delivery tasks (%s); the sweep will send them",
            len(outgoing),
            type(exc).__name__,
        )
        leave_for_sweep(db, [delivery.id for delivery in outgoing])


def leave_for_sweep(db: Database, delivery_ids: Sequence) -> None:
    """Mark deliveries as not sent: the next sweep sends their tasks."""
    with db.statements() as conn:
        stored.leave_for_sweep(conn, list(delivery_ids))
