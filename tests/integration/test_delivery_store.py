"""Claiming and recording attempts through the worker's store, on the test database.

On PostgreSQL the worker claims and records the attempts of its concurrent tasks in shared
statements; each task must still see exactly its own outcome.
"""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.models import Attempt, Delivery
from shared.publishing import publish_event
from shared.sender import SendResult
from shared.services.delivery import DELIVERED, FAILED, RETRY, SKIPPED
from shared.services.delivery_batches import BatchedStore, delivery_store
from shared.services.webhooks import create_webhook, delete_webhook
from shared.timeutil import as_utc, utcnow
from tests.conftest import connection_event

DEFAULT_WALLET = uuid.UUID(int=0)
OK = SendResult(200, None, 1.5)
ERROR = SendResult(500, None, 2.5)


def _deliveries(database, settings, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with database.transaction() as session:
        webhook = create_webhook(session, DEFAULT_WALLET, "http://receiver.test/hook", {}, None, 10)
    ids = []
    for _ in range(count):
        published = publish_event(
            database, settings, DEFAULT_WALLET, "ConnectionUpdated", connection_event()
        )
        ids += [delivery.id for delivery in published.deliveries]
    return webhook.id, ids


def _row(database, delivery_id):
    with database.session() as session:
        return session.get(Delivery, delivery_id)


def _in_threads(function, items):
    results = {}

    def run(index, item):
        results[index] = function(item)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[index] for index in range(len(items))]


def test_concurrent_claims_take_each_delivery_once(database, settings):
    _, ids = _deliveries(database, settings, 20)
    store = delivery_store(database, settings)
    # Every delivery asked for twice at once, as duplicate task messages would.
    claims = _in_threads(store.claim, ids + ids)
    taken = [claim.id for claim in claims if claim is not None]
    assert sorted(taken) == sorted(ids)
    for claim in claims:
        if claim is not None:
            assert claim.number == 1
            assert claim.url == "http://receiver.test/hook"
            assert claim.secrets and claim.secrets[0].startswith("whsec_")
            assert '"type":"ConnectionUpdated"' in claim.body
    assert {_row(database, delivery_id).status for delivery_id in ids} == {"in_flight"}


def test_each_concurrent_record_gets_its_own_outcome(database, settings):
    _, ids = _deliveries(database, settings, 12)
    store = delivery_store(database, settings)
    claims = [store.claim(delivery_id) for delivery_id in ids]
    results = [OK if index % 2 else ERROR for index in range(len(claims))]
    before = utcnow()
    outcomes = _in_threads(
        lambda pair: store.record(pair[0], before, pair[1]), list(zip(claims, results, strict=True))
    )
    assert outcomes == [DELIVERED if index % 2 else RETRY for index in range(len(claims))]
    for index, delivery_id in enumerate(ids):
        row = _row(database, delivery_id)
        if index % 2:
            assert (row.status, row.last_status_code, row.lease_until) == ("delivered", 200, None)
        else:
            assert (row.status, row.last_status_code, row.attempts) == ("pending", 500, 1)
            due = as_utc(row.next_attempt_at) - before
            assert timedelta(0) < due <= timedelta(seconds=settings.webhook_retry_countdown + 5)
    with database.session() as session:
        attempts = session.execute(select(Attempt.delivery_id, Attempt.status_code)).all()
    assert sorted(attempts) == sorted(
        (delivery_id, result.status_code) for delivery_id, result in zip(ids, results, strict=True)
    )


def test_the_last_failed_attempt_fails_the_delivery(database, settings):
    _, (delivery_id,) = _deliveries(database, settings, 1)
    store = delivery_store(database, settings)
    outcomes = []
    for _ in range(settings.max_attempts):
        # A retry is due after the countdown; a claim accepts one due within a second.
        claim = store.claim(delivery_id)
        outcomes.append(store.record(claim, utcnow(), ERROR))
    assert outcomes == [RETRY] * (settings.max_attempts - 1) + [FAILED]
    assert _row(database, delivery_id).status == "failed"
    assert store.claim(delivery_id) is None


def test_an_attempt_on_a_delivery_cancelled_meanwhile_leaves_it_cancelled(database, settings):
    webhook_id, (delivery_id,) = _deliveries(database, settings, 1)
    store = delivery_store(database, settings)
    claim = store.claim(delivery_id)
    with database.transaction() as session:
        delete_webhook(session, DEFAULT_WALLET, webhook_id)
    assert store.record(claim, utcnow(), OK) == SKIPPED
    assert _row(database, delivery_id).status == "cancelled"


def test_one_statement_claims_a_batch_and_records_its_outcomes(database, settings):
    if database.is_sqlite:
        pytest.skip("batches are PostgreSQL's (SQLite has a single writer)")
    _, ids = _deliveries(database, settings, 4)
    store = BatchedStore(database, settings)
    claims = store.claim_many([ids[0], ids[1], ids[0], ids[2], ids[3]])
    assert [claim.id if claim else None for claim in claims] == [ids[0], ids[1], None] + ids[2:]
    taken = [claim for claim in claims if claim is not None]
    outcomes = store.record_many(
        [(taken[0], utcnow(), OK), (taken[1], utcnow(), ERROR), (taken[2], utcnow(), OK)]
    )
    assert outcomes == [DELIVERED, RETRY, DELIVERED]
    assert [_row(database, delivery_id).status for delivery_id in ids] == [
        "delivered",
        "pending",
        "delivered",
        "in_flight",
    ]
    # An outcome for an attempt that no longer owns its row changes nothing.
    assert store.record_many([(taken[0], utcnow(), ERROR), (taken[3], utcnow(), OK)]) == [
        SKIPPED,
        DELIVERED,
    ]
    assert _row(database, ids[0]).status == "delivered"
