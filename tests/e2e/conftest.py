"""Fixtures for fault injection: the service's own processes (always stopped, even when a test
fails half-way), a client of the real HTTP API, a Redis that can be stopped and started again
on the same port, and the tally of what was accepted against what the receiver got.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests.helpers import ADMIN_TOKEN, connection_event
from tests.processes import Process, start_beat, start_web, start_worker
from tests.receiver import Receiver
from tools.embedded_redis import EmbeddedRedis
from tools.processes import free_port

PREFIX = "/cloud-agent"
SETTLE_TIMEOUT = 120.0  # the machine is shared: recovery gets generous time
UNFINISHED = ("pending", "in_flight")


# --- the service's processes ---------------------------------------------------------------


class Stack:
    """The processes one test starts; `close()` stops every one of them.

    Each stack logs into its own folder, so a process whose start timed out (and was never
    handed back to us) is still found, by its log file, and killed.
    """

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.processes: list[Process] = []

    def worker(self) -> Process:
        return self._track(start_worker, self.env, self.logdir)

    def beat(self) -> Process:
        return self._track(start_beat, self.env, self.logdir)

    def web(self, port: int | None = None, command: str | None = None) -> Web:
        port = port or free_port()
        return Web(self._track(start_web, self.env, self.logdir, port, command), port)

    def _track(self, start, *args) -> Process:
        process = start(*args)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception:  # keep stopping the others; the sweep below ends it
                pass
        _kill_strays(self.logdir)


def _kill_strays(logdir: Path) -> None:
    """Kill the process group of any process still writing its output into `logdir`."""
    own_group = os.getpgid(0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not os.readlink(entry / "fd" / "1").startswith(f"{logdir}{os.sep}"):
                continue
            group = os.getpgid(int(entry.name))
            if group != own_group:
                os.killpg(group, signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to read
            continue


@dataclass
class Web:
    process: Process
    port: int

    @property
    def api(self) -> Api:
        return Api(f"http://127.0.0.1:{self.port}")


@pytest.fixture(autouse=True)
def _empty_database_and_broker(clean_state):
    """Each test starts from an empty database (plus the default wallet) and broker."""


@pytest.fixture
def stack(service_env, tmp_path):
    processes = Stack(service_env, tmp_path / "logs")
    processes.logdir.mkdir()
    yield processes
    processes.close()


@pytest.fixture
def receiver():
    """The recording receiver, without a traceback on stderr for every connection a killed
    sender leaves half-open (those resets are the point of these tests)."""
    server = Receiver()
    server.server.handle_error = lambda request, address: None
    yield server
    server.close()


# --- a Redis that can be stopped ------------------------------------------------------------


class RestartableRedis:
    """An embedded Redis that can be stopped and started again on the same port (empty, as a
    Redis without persistence comes back)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.server: EmbeddedRedis | None = EmbeddedRedis(workdir)
        self.port = self.server.port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        if self.server is None:
            self.server = EmbeddedRedis(self.workdir, port=self.port)


@pytest.fixture
def stoppable_redis(tmp_path):
    server = RestartableRedis(tmp_path / "redis")
    yield server
    server.stop()


# --- the HTTP API, as a client sees it ------------------------------------------------------


@dataclass
class HttpTenant:
    api: Api
    wallet_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"apikey": self.api_key}

    def add_webhook(self, url: str) -> dict:
        response = self.api.call("POST", "/events/webhooks", self.headers, {"url": url})
        assert response.status_code == 200, response.text
        return response.json()


class Api:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def url(self, path: str) -> str:
        return f"{self.base_url}{PREFIX}{path}"

    def call(self, method: str, path: str, headers: dict, body: dict) -> requests.Response:
        return requests.request(method, self.url(path), headers=headers, json=body, timeout=30)

    def onboard(self, name: str) -> HttpTenant:
        """Wallet → entity → API key through the admin routes, as an operator would."""
        admin = {"x-admin-api-key": ADMIN_TOKEN}
        wallet = self.call("POST", "/wallets", admin, {"name": name})
        assert wallet.status_code == 201, wallet.text
        wallet_id = wallet.json()["id"]
        entity = self.call("POST", "/iam/entities", admin, {"name": name, "walletId": wallet_id})
        assert entity.status_code == 201, entity.text
        api_key = f"{name}-key-{os.urandom(12).hex()}"
        body = {"entityId": entity.json()["id"], "apiKey": api_key}
        registered = self.call("POST", "/iam/apikey-authentication", admin, body)
        assert registered.status_code == 201, registered.text
        return HttpTenant(self, wallet_id, api_key)


class Publisher:
    """Clients publishing ConnectionUpdated events from a few threads.

    An event is *accepted* when answered 202 (its id is kept). Other answers are counted by
    status; requests that got no answer at all (refused, reset, timed out) are counted by
    error and are not accepted: the client knows nothing happened.
    """

    def __init__(self, tenant: HttpTenant, threads: int = 4, pause: float = 0.0):
        self.tenant = tenant
        self.pause = pause
        self.accepted: list[str] = []
        self.answered: Counter[int] = Counter()
        self.unanswered: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._limit: int | None = None
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self, count: int | None = None) -> Publisher:
        self._limit = count
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not self.running, "publishers still blocked in a request"

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _next(self) -> bool:
        with self._lock:
            if self._stop.is_set() or (self._limit is not None and self._sent >= self._limit):
                return False
            self._sent += 1
            return True

    def _run(self) -> None:
        session = requests.Session()
        url = self.tenant.api.url("/events")
        while self._next():
            body = {"type": "ConnectionUpdated", "data": connection_event()}
            try:
                response = session.post(url, json=body, headers=self.tenant.headers, timeout=30)
            except requests.RequestException as exc:
                with self._lock:
                    self.unanswered[type(exc).__name__] += 1
                session.close()
                session = requests.Session()
                time.sleep(0.05)
                continue
            with self._lock:
                self.answered[response.status_code] += 1
                if response.status_code == 202:
                    self.accepted.append(response.json()["id"])
            if self.pause:
                time.sleep(self.pause)
        session.close()


# --- what arrived, and what the database says -----------------------------------------------


def received_ids(receiver, path: str) -> Counter[str]:
    """How many times each webhook-id (the event id) reached `path`."""
    copies: Counter[str] = Counter()
    for request in receiver.at(path):
        headers = {name.lower(): value for name, value in request.headers.items()}
        copies[headers.get("webhook-id", "?")] += 1
    return copies


@dataclass(frozen=True)
class Tally:
    published: int  # accepted with 202
    delivered: int  # accepted and received at least once
    duplicated: int  # accepted and received more than once
    lost: int  # accepted and never received
    unacknowledged: int  # received, but the publisher never got its 202 (allowed)

    @classmethod
    def of(cls, accepted: list[str], receiver, path: str) -> Tally:
        copies = received_ids(receiver, path)
        ids = set(accepted)
        delivered = sum(1 for event_id in ids if copies[event_id] > 0)
        return cls(
            published=len(accepted),
            delivered=delivered,
            duplicated=sum(1 for event_id in ids if copies[event_id] > 1),
            lost=len(ids) - delivered,
            unacknowledged=len(set(copies) - ids),
        )

    def line(self, name: str, seconds: float, **extra) -> str:
        fields = " ".join(f"{key}={value}" for key, value in extra.items())
        return (
            f"[{name}] published={self.published} delivered={self.delivered} "
            f"duplicated={self.duplicated} lost={self.lost} "
            f"unacknowledged={self.unacknowledged} {fields} wall={seconds:.1f}s"
        )


def delivery_statuses(database) -> Counter[str]:
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
        return Counter({status: count for status, count in rows})


def most_attempts_in_a_round(database) -> int:
    """The largest number of attempt rows any delivery has in one round."""
    with database.engine.connect() as connection:
        counted = connection.execute(
            text(
                "SELECT COUNT(*) FROM attempts GROUP BY delivery_id, round "
                "ORDER BY COUNT(*) DESC LIMIT 1"
            )
        ).scalar()
        recorded = connection.execute(text("SELECT MAX(attempts) FROM deliveries")).scalar()
    return max(counted or 0, recorded or 0)


def accepted_more_than_once(database) -> int:
    """Deliveries the receiver accepted (2xx) in more than one attempt."""
    with database.engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT delivery_id FROM attempts WHERE status_code"
                " BETWEEN 200 AND 299 GROUP BY delivery_id HAVING COUNT(*) > 1) AS twice"
            )
        ).scalar()


def lost_attempts(database) -> int:
    """Attempts the sweep recorded as lost: in flight when their worker died."""
    with database.engine.connect() as connection:
        return connection.execute(
            text("SELECT COUNT(*) FROM attempts WHERE error LIKE 'attempt lost%'")
        ).scalar()


def wait_until_settled(
    database,
    receiver,
    path: str,
    accepted: list[str],
    watch: tuple[Process, ...] = (),
    timeout: float = SETTLE_TIMEOUT,
) -> Counter[str]:
    """Poll until no delivery is unfinished and every accepted id has arrived; give up when
    time is up or a `watch`ed process has exited. The delivery statuses at that moment."""
    deadline = time.monotonic() + timeout
    wanted = set(accepted)
    while True:
        statuses = delivery_statuses(database)
        unfinished = sum(statuses[status] for status in UNFINISHED)
        if unfinished == 0 and wanted <= set(received_ids(receiver, path)):
            return statuses
        if time.monotonic() > deadline or any(p.popen.poll() is not None for p in watch):
            return statuses
        time.sleep(0.5)


def assert_running(*processes: Process) -> None:
    """Each process is still up; otherwise say how it ended, from its own log."""
    for process in processes:
        if process.popen.poll() is not None:
            lines = process.log().splitlines()
            fatal = [line for line in lines if "CRITICAL" in line or "Unrecoverable" in line]
            last = (fatal or lines or ["(empty log)"])[-1]
            raise AssertionError(
                f"{process.name} exited with status {process.popen.returncode}: {last}"
                f" (log: {process.log_path})"
            )


def wait_for_arrivals(receiver, path: str, count: int, timeout: float = SETTLE_TIMEOUT) -> int:
    """Wait until `count` distinct events reached `path`; how many did."""
    deadline = time.monotonic() + timeout
    while (arrived := len(received_ids(receiver, path))) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return arrived
