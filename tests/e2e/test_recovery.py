"""Recovery (contract §10): a receiver that refuses first attempts and accepts retries gets its
events as fast as three attempts 5 s apart would bring them; a lost worker or an emptied Redis
costs seconds, not a minute; a database outage answers 503 and loses nothing.

Every process runs as the Procfile runs it; events are published over HTTP. Each test prints
its figures (run with -s); the bounds asserted are the contract's.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis
import requests
from sqlalchemy import create_engine, text

from tests.e2e.conftest import (
    Publisher,
    Stack,
    Tally,
    accepted_more_than_once,
    assert_running,
    delivery_statuses,
    most_attempts_in_a_round,
    wait_for_arrivals,
    wait_until_settled,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HOOK = "/hook"
# The real spacing and circuit, as deployed (the suite's defaults shorten them).
SERVICE_ENV = {
    "WEBHOOK_RETRY_COUNTDOWN": "5",
    "WEBHOOK_CIRCUIT_FAILURES": "5",
    "DELIVERY_STUCK_AFTER": "15",
}


def longest_gap(receiver, path: str, since: float) -> float:
    """The longest time between two requests reaching `path` after `since` (epoch seconds)."""
    times = sorted(r.at for r in receiver.at(path) if r.at >= since)
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def test_a_receiver_that_accepts_retries_gets_everything_within_two_countdowns(
    stack, receiver, database
):
    web, beat = stack.web(), stack.beat()
    first, second = stack.worker(), stack.worker()
    tenant = web.api.onboard("flaky")
    tenant.add_webhook(receiver.url(HOOK))
    receiver.first_of_each_fails(HOOK)
    publisher = Publisher(tenant, threads=5).start(count=50)
    publisher.join()
    assert publisher.answered == {202: 50}
    # The first attempts fail (the circuit opens after five); the workers are stopped while
    # the retries wait out their countdown, and two new ones take over.
    wait_for_arrivals(receiver, HOOK, 5, timeout=30)
    time.sleep(1.0)
    for worker in (first, second):
        worker.kill(signal.SIGTERM)
    new = (stack.worker(), stack.worker())
    restarted = time.time()
    statuses = wait_until_settled(database, receiver, HOOK, publisher.accepted, watch=new)
    arrivals = {}
    for request in receiver.at(HOOK):
        event = {k.lower(): v for k, v in request.headers.items()}["webhook-id"]
        arrivals.setdefault(event, []).append(request.at)
    delivered_at = max(times[-1] for times in arrivals.values())
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    print(
        tally.line(
            "flaky receiver",
            delivered_at - restarted,
            after_restart=f"{delivered_at - restarted:.1f}s",
            most_attempts=most_attempts_in_a_round(database),
        )
    )
    assert_running(*new, beat, web.process)
    assert tally.lost == 0 and set(statuses) == {"delivered"}, dict(statuses)
    assert delivered_at - restarted <= 15.0
    assert most_attempts_in_a_round(database) <= 3


def test_a_worker_killed_costs_seconds_and_few_duplicates(stack, receiver, database):
    web, beat = stack.web(), stack.beat()
    tenant = web.api.onboard("kill9")
    tenant.add_webhook(receiver.url(HOOK))
    publisher = Publisher(tenant, threads=8).start(count=1000)
    publisher.join()
    assert publisher.answered == {202: 1000}
    started = time.time()
    doomed, survivor = stack.worker(), stack.worker()
    arrived = wait_for_arrivals(receiver, HOOK, 300)
    doomed.kill(signal.SIGKILL)  # the whole process group: nothing recorded, nothing put back
    killed = time.time()
    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(survivor, beat)
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    gap = longest_gap(receiver, HOOK, started)
    print(
        tally.line(
            "worker SIGKILL at 30 %",
            time.time() - started,
            arrived_before_kill=arrived,
            longest_gap=f"{gap:.1f}s",
            settled_after_kill=f"{time.time() - killed:.1f}s",
        )
    )
    assert_running(survivor, beat, web.process)
    assert tally.lost == 0 and set(statuses) == {"delivered"}, dict(statuses)
    assert gap <= 20.0
    assert tally.duplicated <= 10  # 1 % of 1,000
    assert most_attempts_in_a_round(database) <= 3


@pytest.fixture
def own_redis_stack(service_env, stoppable_redis, tmp_path):
    """The processes on a Redis of their own, which the test may empty."""
    processes = Stack({**service_env, "REDIS_URL": stoppable_redis.url}, tmp_path / "logs")
    processes.logdir.mkdir()
    yield processes, stoppable_redis
    processes.close()


def test_an_emptied_redis_costs_seconds_and_loses_nothing(own_redis_stack, receiver, database):
    stack, broker = own_redis_stack
    web, beat = stack.web(), stack.beat()
    tenant = web.api.onboard("flush")
    tenant.add_webhook(receiver.url(HOOK))
    publisher = Publisher(tenant, threads=8).start(count=1000)
    publisher.join()
    assert publisher.answered == {202: 1000}
    started = time.time()
    workers = (stack.worker(), stack.worker())
    arrived = wait_for_arrivals(receiver, HOOK, 300)
    redis.Redis.from_url(broker.url).flushall()  # every queued message and every count
    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(*workers, beat)
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    gap = longest_gap(receiver, HOOK, started)
    print(
        tally.line(
            "Redis FLUSHALL at 30 %",
            time.time() - started,
            arrived_before_flush=arrived,
            longest_gap=f"{gap:.1f}s",
        )
    )
    assert_running(*workers, beat, web.process)
    assert tally.lost == 0 and set(statuses) == {"delivered"}, dict(statuses)
    assert gap <= 20.0
    assert most_attempts_in_a_round(database) <= 3


def _allow_connections(database_url: str, allowed: bool) -> None:
    """From the server's maintenance database: let the service's database take connections
    again, or refuse them and end the ones it has (as an outage does)."""
    name = database_url.rsplit("/", 1)[-1].split("?", 1)[0]
    admin = create_engine(
        database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {allowed}'))
        if not allowed:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    admin.dispose()


def _healthy(web) -> bool:
    try:
        return requests.get(web.api.url("/_system/health"), timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_a_database_outage_answers_503_and_loses_nothing(stack, receiver, database, base_env):
    url = base_env["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("a PostgreSQL outage (TEST_DATABASE_URL)")
    web, beat = stack.web(), stack.beat()
    workers = (stack.worker(), stack.worker())
    tenant = web.api.onboard("outage")
    tenant.add_webhook(receiver.url(HOOK))
    publisher = Publisher(tenant, threads=2, pause=0.05).start()  # about 40 events/s
    time.sleep(5)
    database.dispose()
    _allow_connections(url, False)
    try:
        time.sleep(15)
    finally:
        _allow_connections(url, True)
    ended = time.time()
    healthy_after = None
    while time.time() - ended < 60:
        if _healthy(web):
            healthy_after = time.time() - ended
            break
        time.sleep(0.5)
    time.sleep(3)
    publisher.stop()
    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(*workers, beat), timeout=60
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    arrived = {}
    for request in receiver.at(HOOK):
        event = {k.lower(): v for k, v in request.headers.items()}["webhook-id"]
        arrived.setdefault(event, request.at)
    last = max(arrived.values())
    print(
        tally.line(
            "PostgreSQL refusing connections for 15 s",
            time.time() - ended,
            answers=dict(publisher.answered),
            no_answer=dict(publisher.unanswered),
            health_back_after=f"{healthy_after}s",
            last_arrival_after_outage=f"{last - ended:.1f}s",
        )
    )
    assert_running(*workers, beat, web.process)
    assert set(publisher.answered) <= {202, 503}, dict(publisher.answered)
    assert 503 in publisher.answered
    assert tally.lost == 0 and set(statuses) == {"delivered"}, dict(statuses)
    assert healthy_after is not None and healthy_after <= 30
    assert last - ended <= 60


def test_a_recovered_webhooks_backlog_goes_out_without_waiting_for_sweeps(
    stack, receiver, database
):
    """After an outage the waiting deliveries go out as the released attempts end, not a cap's
    worth per sweep: beat stops as soon as the receiver is seen accepting again, and the
    whole backlog still arrives."""
    web, beat = stack.web(), stack.beat()
    worker = stack.worker()
    tenant = web.api.onboard("recovering")
    tenant.add_webhook(receiver.url(HOOK))
    receiver.behave(HOOK, then=500)
    publisher = Publisher(tenant, threads=5).start(count=200)
    publisher.join()
    assert publisher.answered == {202: 200}

    def waiting() -> int:
        return delivery_statuses(database)["waiting"]

    deadline = time.monotonic() + 60
    while waiting() < 150 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert waiting() >= 150, delivery_statuses(database)
    back = time.time()
    receiver.behave(HOOK, then=200)
    # The sweep's next probe succeeds and the webhook recovers; from then on no sweep runs.
    while not any(r.at >= back for r in receiver.at(HOOK)) and time.time() < back + 60:
        time.sleep(0.05)
    beat.kill(signal.SIGTERM)
    statuses = wait_until_settled(
        database, receiver, HOOK, publisher.accepted, watch=(worker,), timeout=60
    )
    tally = Tally.of(publisher.accepted, receiver, HOOK)
    print(tally.line("recovered backlog", time.time() - back))
    assert tally.lost == 0 and set(statuses) == {"delivered"}, dict(statuses)
    # The refused attempts reached the receiver too; each event was accepted once.
    assert accepted_more_than_once(database) == 0
