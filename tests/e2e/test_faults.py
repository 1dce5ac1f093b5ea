"""Faults the contract promises to survive (§7, beyond Identus): a worker killed mid-delivery,
Redis gone for a while, the API restarted under load. An event answered 202 is never lost;
duplicates are allowed (and counted); no delivery gets more than 3 attempts in a round.

Every process runs as the Procfile runs it (gunicorn, celery worker, celery beat) and events
are published over HTTP, so each test decides which broker its API sends to.
Run with -s to see each test's count line.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import (
    Publisher,
    Stack,
    Tally,
    assert_running,
    delivery_statuses,
    lost_attempts,
    most_attempts_in_a_round,
    wait_for_arrivals,
    wait_until_settled,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HOOK = "/hook"


def assert_all_delivered(tally: Tally, statuses, database, logdir) -> None:
    assert tally.lost == 0, f"{tally}; statuses {dict(statuses)}; logs in {logdir}"
    assert set(statuses) == {"delivered"}, f"{dict(statuses)}; logs in {logdir}"
    assert most_attempts_in_a_round(database) <= 3


def test_worker_killed_mid_run_loses_no_event(stack, receiver, database):
    started = time.monotonic()
    web = stack.web()
    beat = stack.beat()
    tenant = web.api.onboard("kill9")
    tenant.add_webhook(receiver.url(HOOK))
    publisher = Publisher(tenant, threads=8).start(count=1000)
    publisher.join()
    published_in = time.monotonic() - started
    assert publisher.answered == {202: 1000} and not publisher.unanswered, (
        f"answers {dict(publisher.answered)}, no answer {dict(publisher.unanswered)}"
    )

    # A backlog, so the worker dies holding running tasks and prefetched messages.
    worker = stack.worker()
    arrived_before_kill = wait_for_arrivals(receiver, HOOK, 333)
    worker.kill(signal.SIGKILL)  # the whole process group: nothing acked, nothing recorded
    assert 333 <= arrived_before_kill < 1000, f"{arrived_before_kill} arrived before the kill"
    worker = stack.worker()

    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(worker, beat)
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    print(
        tally.line(
            "worker SIGKILL",
            time.monotonic() - started,
            publishing=f"{published_in:.1f}s",
            arrived_before_kill=arrived_before_kill,
            attempts_lost_with_worker=lost_attempts(database),
            most_attempts=most_attempts_in_a_round(database),
        )
    )
    assert_running(worker, beat, web.process)
    assert tally.published == 1000
    assert_all_delivered(tally, statuses, database, stack.logdir)


@pytest.fixture
def outage_stack(service_env, stoppable_redis, tmp_path):
    """Web, worker and beat on a Redis of their own, which the test can stop."""
    processes = Stack({**service_env, "REDIS_URL": stoppable_redis.url}, tmp_path / "outage")
    processes.logdir.mkdir()
    yield processes
    processes.close()


def test_redis_down_for_10s_while_publishing(outage_stack, stoppable_redis, receiver, database):
    started = time.monotonic()
    web = outage_stack.web()
    worker = outage_stack.worker()
    beat = outage_stack.beat()
    tenant = web.api.onboard("outage")
    tenant.add_webhook(receiver.url(HOOK))

    publisher = Publisher(tenant, threads=2, pause=0.02).start()
    publishing_since = time.monotonic()
    try:
        time.sleep(2.5)
        stoppable_redis.stop()
        time.sleep(10)
        stoppable_redis.start()
        time.sleep(max(0.0, 15 - (time.monotonic() - publishing_since)))
    finally:
        publisher.stop()
    # A broker outage is no error: every publish is committed and answered 202.
    assert set(publisher.answered) == {202} and not publisher.unanswered, (
        f"answers {dict(publisher.answered)}, no answer {dict(publisher.unanswered)}"
    )

    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(worker, beat)
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    print(tally.line("redis down 10s", time.monotonic() - started))
    assert_running(worker, beat, web.process)
    assert tally.published > 0
    assert_all_delivered(tally, statuses, database, outage_stack.logdir)


def test_api_restarted_under_load(stack, receiver, database):
    started = time.monotonic()
    web = stack.web()
    worker = stack.worker()
    beat = stack.beat()
    tenant = web.api.onboard("restart")
    tenant.add_webhook(receiver.url(HOOK))

    publisher = Publisher(tenant, threads=3, pause=0.01).start()
    publishing_since = time.monotonic()
    try:
        time.sleep(3)
        web.process.kill(signal.SIGTERM)  # what a platform sends at a deploy or restart
        web.process.stop()
        down_since = time.monotonic()
        web = stack.web(port=web.port)
        down_for = time.monotonic() - down_since
        time.sleep(max(0.0, 10 - (time.monotonic() - publishing_since)))
    finally:
        publisher.stop()
    # The database stays up: the API either answers 202 or does not answer at all.
    assert set(publisher.answered) == {202}, dict(publisher.answered)

    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(worker, beat)
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    unanswered = sum(publisher.unanswered.values())
    print(
        tally.line(
            "api restart",
            time.monotonic() - started,
            unanswered=unanswered,
            restart=f"{down_for:.1f}s",
        )
    )
    assert_running(worker, beat, web.process)
    assert unanswered > 0, "the restart interrupted no request: the fault was not injected"
    assert tally.published > 0
    assert_all_delivered(tally, statuses, database, stack.logdir)
    # An event committed just before its connection dropped is delivered too, unacknowledged.
    assert delivery_statuses(database).total() == tally.published + tally.unacknowledged
