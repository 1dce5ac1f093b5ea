"""What PostgreSQL's sessions on the bench's database do, sampled while a scenario runs.

Each sampler queries pg_stat_activity from a connection to another database (`postgres`), so
that it is never among what it counts, in a thread of its own, until stopped.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

from bench.procs import descendants


class Sampler:
    interval = 0.2

    def __init__(self, database_url: str):
        url = make_url(database_url)
        self.database = url.database
        self.port = url.port or 5432
        url = url.set(drivername="postgresql+psycopg", database="postgres")
        self.engine = create_engine(url, pool_size=1, max_overflow=0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()
        return {"samples": self.samples, **self.figures()}

    def _run(self) -> None:
        with self.engine.connect() as connection:
            while not self._stop.wait(self.interval):
                self.sample(connection)
                connection.rollback()
                self.samples += 1

    def sample(self, connection: Connection) -> None:
        raise NotImplementedError

    def figures(self) -> dict:
        raise NotImplementedError


class Connections(Sampler):
    """Client connections to the database, and how many each watched process holds (its
    established sockets to the database's port, from /proc)."""

    QUERY = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = :db AND backend_type = 'client backend'"
    )

    def __init__(self, database_url: str):
        super().__init__(database_url)
        self.roots: dict[str, int] = {}  # process name -> pid, added as the stack starts them
        self.peak = 0
        self.peak_service = 0  # the most the watched processes held together
        self.peak_by_process: dict[str, int] = {}

    def sample(self, connection: Connection) -> None:
        total = connection.execute(self.QUERY, {"db": self.database}).scalar()
        held = self._held()
        self.peak = max(self.peak, total)
        self.peak_service = max(self.peak_service, sum(held.values()))
        for name, count in held.items():
            self.peak_by_process[name] = max(self.peak_by_process.get(name, 0), count)

    def figures(self) -> dict:
        return {
            "peak": self.peak,
            "peak_service": self.peak_service,
            "peak_by_process": self.peak_by_process,
        }

    def _held(self) -> dict[str, int]:
        sockets = _sockets_to(self.port)
        held = {}
        for name, root in list(self.roots.items()):
            for pid in descendants(root):
                label = name if pid == root else f"{name}/{pid}"
                held[label] = sum(1 for inode in _socket_inodes(pid) if inode in sockets)
        return held


class LockWaits(Sampler):
    """Every 0.1 s, the statements waiting for a lock, each with the statements of the
    sessions that hold it."""

    interval = 0.1
    QUERY = text(
        """
        SELECT left(regexp_replace(w.query, '\\s+', ' ', 'g'), 100),
               coalesce(string_agg(DISTINCT left(regexp_replace(b.query, '\\s+', ' ', 'g'), 100)
                                   || ' (' || b.state || ')', ' | '), '?')
        FROM pg_stat_activity w
        LEFT JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid))
        WHERE w.datname = :db AND w.wait_event_type = 'Lock'
        GROUP BY w.pid, w.query
        """
    )

    def __init__(self, database_url: str):
        super().__init__(database_url)
        self.with_waits = self.most = 0
        self.waiting: Counter = Counter()  # "statement <- holders" -> samples it was seen in

    def sample(self, connection: Connection) -> None:
        rows = connection.execute(self.QUERY, {"db": self.database}).all()
        self.with_waits += bool(rows)
        self.most = max(self.most, len(rows))
        self.waiting.update(f"{waiting} <- {holders}" for waiting, holders in rows)

    def figures(self) -> dict:
        return {
            "with_waits": self.with_waits,
            "most_at_once": self.most,
            "statements": dict(self.waiting.most_common(5)),
        }


def _sockets_to(port: int) -> set[str]:
    """Inodes of established TCP sockets whose remote end is `port` (IPv4 and IPv6)."""
    found = set()
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[2].endswith(suffix) and fields[3] == "01":
                found.add(fields[9])
    return found


def _socket_inodes(pid: int) -> list[str]:
    inodes = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(target[8:-1])
    return inodes
