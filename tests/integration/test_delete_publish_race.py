"""Deleting a webhook while its wallet publishes, both sides at once, many times: the publish
always succeeds for the others, and nothing is ever sent to the deleted webhook."""

import threading
import uuid

from sqlalchemy import select

from shared.models import Delivery
from shared.publishing import publish
from shared.services.webhooks import WebhookRequest, create_webhook, delete_webhook
from shared.store.stores import delivery_store
from tests.helpers import connection_event

DEFAULT_WALLET = uuid.UUID(int=0)
ROUNDS = 40


def _race(database, settings, webhook_id) -> list[BaseException]:
    """Delete the webhook and publish an event at the same moment; the errors of either side."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def delete():
        barrier.wait()
        with database.transaction() as session:
            delete_webhook(session, DEFAULT_WALLET, webhook_id)

    def publish_one():
        barrier.wait()
        try:
            publish(database, settings, DEFAULT_WALLET, "ConnectionUpdated", connection_event())
        except BaseException as exc:  # noqa: BLE001 - any failure of the publish is the finding
            errors.append(exc)

    threads = [threading.Thread(target=delete), threading.Thread(target=publish_one)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_publish_racing_a_delete_is_stored_and_never_sent_to_the_deleted_webhook(
    database, settings
):
    store = delivery_store(database, settings)
    with database.transaction() as session:
        # The wallet's other webhook must get every event, whatever happens to the first.
        create_webhook(session, settings, DEFAULT_WALLET, WebhookRequest("http://keeper.test/hook"))
    for _ in range(ROUNDS):
        with database.transaction() as session:
            doomed = create_webhook(
                session, settings, DEFAULT_WALLET, WebhookRequest("http://doomed.test/h")
            )
        assert _race(database, settings, doomed.id) == []
    with database.session() as session:
        rows = session.execute(select(Delivery.id, Delivery.url, Delivery.webhook_id)).all()
    kept = [row for row in rows if row.url == "http://keeper.test/hook"]
    assert len(kept) == ROUNDS  # every publish stored its event for the webhook that stays
    orphans = [row.id for row in rows if row.url == "http://doomed.test/h"]
    for delivery_id in orphans:
        assert store.claim(delivery_id) is None  # never sent to the deleted webhook
    with database.session() as session:
        statuses = set(
            session.scalars(select(Delivery.status).where(Delivery.id.in_(orphans))).all()
        )
    assert statuses <= {"cancelled"}
