"""What every scenario works with, and the helpers they share."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from bench.fixtures import Tenant, clear_events, flush_redis
from bench.procs import Registry, cpu_by_process, descendants, machine_cpu, pids_named
from bench.receiver import ReceiverClient
from bench.stack import Stack
from shared.db import Database
from shared.settings import Settings


@dataclass
class Options:
    events: int  # drain and baseline backlog
    duration: float  # seconds of ingest, latency and isolation load
    warmup: float  # seconds of the same load before those, not reported
    ceiling_seconds: float
    tail_seconds: float  # how long to wait for the last deliveries after the load stops
    publish_timeout: float  # a backlog stops growing after this long
    drain_timeout: float
    baseline_timeout: float
    workers: int  # worker processes (the Procfile runs one)
    baseline_concurrency: int
    profile: bool = False  # py-spy the workers during drain
    latency_rate: float = 200.0
    latency_high_rate: float = 400.0
    isolation_rate: float = 100.0
    outage_seconds: float = 600.0  # how long the outage scenario's receiver refuses
    window: float = 60.0  # seconds fairness, slow_healthy and locks load after the disturbance
    size_rows: int = 10_000_000  # deliveries in the size scenario's history
    burst_events: int = 5_000  # single events published at once in the burst scenario


@dataclass
class Context:
    options: Options
    registry: Registry
    stack: Stack
    db: Database
    settings: Settings
    receiver: ReceiverClient
    receiver_pid: int
    redis_url: str
    baseline_redis_url: str
    workdir: Path
    tenants: dict[str, Tenant] = field(default_factory=dict)

    def clean_slate(self) -> None:
        """What earlier scenarios published, queued and delivered is gone; tenants stay."""
        clear_events(self.db)
        flush_redis(self.redis_url)
        self.receiver.reset()

    def python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    def run_jobs(self, name: str, commands: list[list[str]], timeout: float) -> list[dict]:
        """Run commands side by side (each writes JSON to the file after --out)."""
        outs, procs = [], []
        try:
            for number, command in enumerate(commands):
                out = self.workdir / f"{name}-{number}.json"
                out.unlink(missing_ok=True)
                outs.append(out)
                # The service's environment: a publisher seals and opens what the stack does.
                command = [*command, "--out", str(out)]
                procs.append(self.registry.start(f"{name}-{number}", command, self.stack.env))
            deadline = time.monotonic() + timeout
            for proc in procs:
                code = proc.popen.wait(timeout=max(1.0, deadline - time.monotonic()))
                if code != 0:
                    raise RuntimeError(f"{proc.name} failed ({code}):\n{proc.log_tail()}")
        finally:
            self.registry.stop(*procs, grace=2.0)
        return [json.loads(out.read_text()) for out in outs]


class CpuMeter:
    """CPU seconds spent by each part of the system over a window, and by the whole machine."""

    def __init__(self, service: dict[str, list[int]], ctx: Context):
        receiver_pid = ctx.receiver_pid
        # The Redis server the bench uses (other redis-server processes may run beside it).
        redis_port = f":{urlsplit(ctx.redis_url).port or 6379}"
        # PostgreSQL backends serving the bench's database (their title names it).
        database = f" {make_url(ctx.settings.database_url).database} "
        self.groups = {
            name: lambda roots=roots: [p for pid in roots for p in descendants(pid)]
            for name, roots in service.items()
        }
        self.groups.update(
            receiver=lambda: [receiver_pid],
            postgres=lambda: pids_named("postgres", database),
            redis=lambda: pids_named("redis-server", redis_port),
        )
        self.begin: dict = {}

    def _snapshot(self) -> dict:
        values: dict = {name: cpu_by_process(pids()) for name, pids in self.groups.items()}
        values["machine"] = machine_cpu()[0]
        values["wall"] = time.monotonic()
        return values

    def start(self) -> None:
        self.begin = self._snapshot()

    def stop(self) -> dict[str, float]:
        """CPU seconds per group over the window.

        Counted process by process: one that started inside the window counts from zero, and
        one that ended inside it (a database connection closed, say) counts nothing rather
        than taking its whole past away from the group's sum.
        """
        end = self._snapshot()
        used = {name: round(end[name] - self.begin[name], 2) for name in ("machine", "wall")}
        for name in self.groups:
            before = self.begin[name]
            spent = sum(cpu - before.get(key, 0.0) for key, cpu in end[name].items())
            used[name] = round(spent, 2)
        used["other"] = round(used["machine"] - sum(used[n] for n in self.groups), 2)
        return used
