"""Transactions that read a row, then write what they read plus one (a webhook's failure count),
lose no update when they overlap: PostgreSQL locks the row they read for update; SQLite, which
ignores that, gives each transaction its write lock before its first read."""

import threading
import uuid

from shared.models import Webhook
from shared.services.webhooks import WebhookRequest, create_webhook

DEFAULT_WALLET = uuid.UUID(int=0)
THREADS, EACH = 6, 5


def test_overlapping_read_then_write_transactions_lose_no_update(database, settings):
    with database.transaction() as session:
        webhook = create_webhook(
            session, settings, DEFAULT_WALLET, WebhookRequest("http://receiver.test/hook")
        )
        session.flush()
        webhook_id = webhook.id
    start = threading.Barrier(THREADS)
    errors = []

    def count_failures():
        start.wait()
        try:
            for _ in range(EACH):
                with database.transaction() as session:
                    row = session.get(
                        Webhook, webhook_id, with_for_update=True, populate_existing=True
                    )
                    row.consecutive_failures += 1
        except Exception as exc:  # noqa: BLE001 - reported below, with the count
            errors.append(exc)

    threads = [threading.Thread(target=count_failures) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.session() as session:
        counted = session.get(Webhook, webhook_id).consecutive_failures
    assert (counted, errors) == (THREADS * EACH, [])
