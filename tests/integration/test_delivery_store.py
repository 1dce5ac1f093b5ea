"""Claiming and recording attempts through the worker's store, on the test db.

On PostgreSQL the worker claims and records the attempts of its concurrent tasks in shared
statements; each task must still see exactly its own outcome.
"""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from shared.attempt_rules import Outcome, signing_secrets
from shared.db import PREPARE_AFTER, Database
from shared.models import Attempt, Delivery, Webhook
from shared.publishing import publish
from shared.sender import SendResult
from shared.services.delivery import record_attempt
from shared.services.webhooks import WebhookRequest, create_webhook, delete_webhook
from shared.settings import load_settings
from shared.store import claims
from shared.store.rows import FinishedAttempt
from shared.store.stores import BatchedStore, delivery_store
from shared.timeutil import as_utc, utcnow
from tests.helpers import connection_event
from tools.migrate import prepare_database

DEFAULT_WALLET = uuid.UUID(int=0)


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-unprepared"], scope="module")
def store_database(request, base_env, tmp_path_factory):
    """Each dialect's statements, whichever db the rest of the suite runs on: SQLite in
    a file of its own, PostgreSQL when TEST_DATABASE_URL names one, with server-side prepared
    statements (the default) and without (DATABASE_PREPARED_STATEMENTS=false, for PgBouncer)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    else:
        url = base_env["DATABASE_URL"]
        if not url.startswith("postgresql"):
            pytest.skip("PostgreSQL's statements need TEST_DATABASE_URL")
    prepared = "false" if request.param.endswith("unprepared") else "true"
    env = {**base_env, "DATABASE_URL": url, "DATABASE_PREPARED_STATEMENTS": prepared}
    settings = load_settings(env)
    prepare_database(settings)
    db = Database(settings.database_url, prepared_statements=settings.database_prepared_statements)
    db.test_prepared = settings.database_prepared_statements
    yield db
    db.dispose()


@pytest.fixture
def db(store_database):
    """The store's db, emptied of deliveries and webhooks before each test."""
    with store_database.transaction() as session:
        for table in ("attempts", "deliveries", "events", "webhooks"):
            session.execute(text(f"DELETE FROM {table}"))
    return store_database


OK = SendResult(200, None, 1.5)
ERROR = SendResult(500, None, 2.5)


def _deliveries(db, settings, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    with db.transaction() as session:
        webhook = create_webhook(
            session, settings, DEFAULT_WALLET, WebhookRequest("http://receiver.test/hook")
        )
    ids = []
    for _ in range(count):
        published = publish(db, settings, DEFAULT_WALLET, "ConnectionUpdated", connection_event())
        ids += [delivery.id for delivery in published.deliveries]
    return webhook.id, ids


def _row(db, delivery_id):
    with db.session() as session:
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


def test_concurrent_claims_take_each_delivery_once(db, settings):
    _, ids = _deliveries(db, settings, 20)
    store = delivery_store(db, settings)
    # Every delivery asked for twice at once, as duplicate task messages would.
    claims = _in_threads(store.claim, ids + ids)
    taken = [claim.id for claim in claims if claim is not None]
    assert sorted(taken) == sorted(ids)
    for claim in claims:
        if claim is not None:
            assert claim.number == 1
            assert claim.url == "http://receiver.test/hook"
            secrets = signing_secrets(claim, settings, utcnow())
            assert secrets and secrets[0].startswith("whsec_")
            assert '"type":"ConnectionUpdated"' in claim.body
    assert {_row(db, delivery_id).status for delivery_id in ids} == {"in_flight"}


def test_a_delivery_whose_row_is_held_for_a_moment_is_claimed_all_the_same(db, settings):
    """A release of waiting deliveries holds, for as long as its statement runs, rows it finds
    no longer waiting: one may be the delivery it released a moment before, whose task is
    claiming it now. That task must not skip it, or it stays pending with its message spent."""
    if not db.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's row locks")
    _, (delivery_id,) = _deliveries(db, settings, 1)
    store = delivery_store(db, settings)
    claimed = []
    with db.engine.connect() as holder, holder.begin():
        holder.execute(select(Delivery.id).where(Delivery.id == delivery_id).with_for_update())
        claiming = threading.Thread(target=lambda: claimed.append(store.claim(delivery_id)))
        claiming.start()
        time.sleep(0.02)
    claiming.join()
    assert claimed[0] is not None and claimed[0].id == delivery_id
    assert _row(db, delivery_id).status == "in_flight"


def test_each_concurrent_record_gets_its_own_outcome(db, settings):
    _, ids = _deliveries(db, settings, 12)
    store = delivery_store(db, settings)
    claims = [store.claim(delivery_id) for delivery_id in ids]
    results = [OK if index % 2 else ERROR for index in range(len(claims))]
    before = utcnow()
    outcomes = _in_threads(
        lambda pair: record_attempt(store, settings, pair[0], before, pair[1]).outcome,
        list(zip(claims, results, strict=True)),
    )
    assert outcomes == [
        Outcome.DELIVERED if index % 2 else Outcome.RETRY for index in range(len(claims))
    ]
    for index, delivery_id in enumerate(ids):
        row = _row(db, delivery_id)
        if index % 2:
            assert (row.status, row.last_status_code, row.lease_until) == ("delivered", 200, None)
        else:
            assert (row.status, row.last_status_code, row.attempts) == ("pending", 500, 1)
            due = as_utc(row.next_attempt_at) - before
            assert timedelta(0) < due <= timedelta(seconds=settings.webhook_retry_countdown + 5)
    with db.session() as session:
        attempts = session.execute(select(Attempt.delivery_id, Attempt.status_code)).all()
    assert sorted(attempts) == sorted(
        (delivery_id, result.status_code) for delivery_id, result in zip(ids, results, strict=True)
    )


def test_the_last_failed_attempt_fails_the_delivery(db, settings):
    _, (delivery_id,) = _deliveries(db, settings, 1)
    store = delivery_store(db, settings)
    outcomes = []
    for _ in range(settings.max_attempts):
        # A retry is due after the countdown; a claim accepts one due within a second.
        claim = store.claim(delivery_id)
        outcomes.append(record_attempt(store, settings, claim, utcnow(), ERROR).outcome)
    assert outcomes == [Outcome.RETRY] * (settings.max_attempts - 1) + [Outcome.FAILED]
    assert _row(db, delivery_id).status == "failed"
    assert store.claim(delivery_id) is None


def test_an_attempt_on_a_delivery_cancelled_meanwhile_leaves_it_cancelled(db, settings):
    webhook_id, (delivery_id,) = _deliveries(db, settings, 1)
    store = delivery_store(db, settings)
    claim = store.claim(delivery_id)
    with db.transaction() as session:
        delete_webhook(session, DEFAULT_WALLET, webhook_id)
    assert record_attempt(store, settings, claim, utcnow(), OK).outcome == Outcome.SKIPPED
    assert _row(db, delivery_id).status == "cancelled"


def _record(claim, result: SendResult) -> FinishedAttempt:
    """The attempt row `record_attempt` would write, one outcome per result."""
    status, retry_at = ("delivered", None) if result.ok else ("pending", utcnow())
    return FinishedAttempt(
        claim.id,
        claim.round,
        claim.number,
        utcnow(),
        result.duration_ms,
        result.status_code,
        result.error,
        status,
        retry_at,
    )


def test_one_statement_claims_a_batch_and_records_its_outcomes(db, settings):
    _, ids = _deliveries(db, settings, 4)
    store = BatchedStore(db, settings)
    claims = store.claim_many([ids[0], ids[1], ids[0], ids[2], ids[3]])
    assert [claim.id if claim else None for claim in claims] == [ids[0], ids[1], None] + ids[2:]
    taken = [claim for claim in claims if claim is not None]
    outcomes = store.record_many(
        [_record(taken[0], OK), _record(taken[1], ERROR), _record(taken[2], OK)]
    )
    assert outcomes == [True, True, True]
    assert [_row(db, delivery_id).status for delivery_id in ids] == [
        "delivered",
        "pending",
        "delivered",
        "in_flight",
    ]
    # An outcome for an attempt that no longer owns its row changes nothing.
    assert store.record_many([_record(taken[0], ERROR), _record(taken[3], OK)]) == [False, True]
    assert _row(db, ids[0]).status == "delivered"


def test_a_failing_webhooks_deliveries_wait_and_are_released_oldest_first(db, settings):
    webhook_id, ids = _deliveries(db, settings, 5)
    store = delivery_store(db, settings)
    with db.transaction() as session:
        session.execute(
            text("UPDATE webhooks SET status = 'failing' WHERE id = :id"),
            {"id": webhook_id.hex if db.is_sqlite else str(webhook_id)},
        )
    # The circuit is open: a claim takes nothing and the delivery waits, no attempt spent.
    assert [store.claim(delivery_id) for delivery_id in ids] == [None] * 5
    waiting = [_row(db, delivery_id) for delivery_id in ids]
    assert {(row.status, row.attempts) for row in waiting} == {("waiting", 0)}
    assert all(row.last_error == "waiting: the webhook is failing" for row in waiting)
    # Nothing is released while it is failing; once it is active, the oldest go first.
    assert store.release_waiting(webhook_id, 2) == []
    with db.transaction() as session:
        session.execute(
            text("UPDATE webhooks SET status = 'active' WHERE id = :id"),
            {"id": webhook_id.hex if db.is_sqlite else str(webhook_id)},
        )
    released = {outgoing.id for outgoing in store.release_waiting(webhook_id, 2)}
    assert released == set(ids[:2])
    assert [_row(db, delivery_id).status for delivery_id in ids] == ["pending"] * 2 + [
        "waiting"
    ] * 3


def _failures(db, webhook_id) -> int:
    with db.session() as session:
        return session.get(Webhook, webhook_id, populate_existing=True).consecutive_failures


def test_a_recorded_success_ends_the_failures_other_processes_counted(db, settings):
    webhook_id, ids = _deliveries(db, settings, 2)
    with db.transaction() as session:
        session.get(Webhook, webhook_id).consecutive_failures = 3  # counted by another worker
    store = delivery_store(db, settings)
    failed = store.claim(ids[0])
    assert record_attempt(store, settings, failed, utcnow(), ERROR).outcome == Outcome.RETRY
    assert _failures(db, webhook_id) == 3  # a failure is the health tracker's to count
    succeeded = store.claim(ids[1])
    assert record_attempt(store, settings, succeeded, utcnow(), OK).outcome == Outcome.DELIVERED
    assert _failures(db, webhook_id) == 0


def _prepared_on_the_server(db, settings, runs: int) -> int:
    """Claim through one connection `runs` times; how many statements it then has prepared."""
    params = {"max_attempts": 3, "due_by": utcnow(), "lease_until": utcnow(), "now": utcnow()}
    with db.statements() as conn:
        for _ in range(runs):
            claims.claim(conn, [uuid.uuid4()], params)
        return conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()


def test_hot_statements_are_prepared_on_the_server_unless_turned_off(db, settings):
    if db.is_sqlite:
        pytest.skip("PostgreSQL's prepared statements")
    prepared = _prepared_on_the_server(db, settings, PREPARE_AFTER + 1)
    if db.test_prepared:
        assert prepared >= 1
    else:
        assert prepared == 0


def test_parks_made_at_once_each_keep_their_reason_and_time(db, settings):
    _, ids = _deliveries(db, settings, 12)
    store = delivery_store(db, settings)
    due = utcnow().replace(microsecond=0) + timedelta(seconds=30)

    def park(delivery_id):
        if ids.index(delivery_id) % 3 == 0:
            store.park(delivery_id, "the webhook's rate limit", due)
        else:
            store.park(delivery_id, "the webhook has its share of attempts running")

    _in_threads(park, ids)
    for index, delivery_id in enumerate(ids):
        row = _row(db, delivery_id)
        assert row.status == "waiting"
        if index % 3 == 0:
            assert row.last_error == "waiting: the webhook's rate limit"
            assert as_utc(row.next_attempt_at) == due
        else:
            assert row.last_error == "waiting: the webhook has its share of attempts running"
            assert as_utc(row.next_attempt_at) < due


def test_a_records_later_events_are_stored_waiting_until_the_one_before_ends(db, settings):
    """Behind an unfinished delivery of its record, a new one takes no message: it waits in
    the database (as its claim would park it) and the end of the one before releases it."""
    from shared.publishing import EventInput, publish_events
    from shared.store import waiting
    from shared.store.conditions import BEHIND_RECORD

    with db.transaction() as session:
        request = WebhookRequest("http://receiver.test/hook", ordering="record")
        webhook_id = create_webhook(session, settings, DEFAULT_WALLET, request).id
    one, other = str(uuid.uuid4()), str(uuid.uuid4())

    def event(record, state="ConnectionRequestReceived"):
        return EventInput(
            DEFAULT_WALLET, "ConnectionUpdated", connection_event(state, connectionId=record)
        )

    (first,) = publish(db, settings, DEFAULT_WALLET, "ConnectionUpdated",
                       connection_event(connectionId=one)).deliveries  # fmt: skip
    with db.statements() as conn:
        # One's second event, and two of the other record in one batch.
        batch = publish_events(conn, settings, [event(one), event(other), event(other)])
    with db.session() as session:
        rows = session.scalars(select(Delivery).order_by(Delivery.seq)).all()
    assert [row.status for row in rows] == ["pending", "waiting", "pending", "waiting"]
    assert [row.last_error for row in rows] == [None, BEHIND_RECORD, None, BEHIND_RECORD]
    assert [d.id for d in batch.deliveries] == [rows[2].id]  # only the pending get a message

    with db.transaction() as session:
        session.get(Delivery, first.id).status = "delivered"
    with db.statements() as conn:
        released = waiting.release_next_of_record(conn, webhook_id, rows[0].record_key, utcnow())
    assert [d.id for d in released] == [rows[1].id]
