"""The service's processes, started exactly as the Procfile starts them.

`release` runs once on the fresh database; `web`, `worker` and `beat` are the Procfile's own
command lines, run by /bin/sh as a PaaS (or honcho) runs them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from bench.procs import BIN, ROOT, Proc, Registry
from tools.cli import procfile_commands
from tools.processes import wait_for_http

# The bench's own key: its processes, and the scenarios that publish in the bench's process,
# seal and open with it.
BENCH_SECRET_ENCRYPTION_KEY = "YmVuY2gtc2VjcmV0LWVuY3J5cHRpb24ta2V5LTAxMjM="


def service_env(database_url: str, redis_url: str, logdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        BEAT_SCHEDULE_FILE=str(logdir / "celerybeat-schedule"),
        # A known key, so that the release step does not print a generated one.
        DEFAULT_WALLET_AUTH_API_KEY="bench-default-wallet-key-0123456789",
        # The operator's own requests (the size scenario reads the operator's delivery log).
        ADMIN_TOKEN="bench-admin-token-0123456789",
        PYTHONUNBUFFERED="1",
    )
    # Every process of the stack opens what the others sealed.
    env.setdefault("SECRET_ENCRYPTION_KEY", BENCH_SECRET_ENCRYPTION_KEY)
    # web does not start without one on PostgreSQL; a run's own.
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class Stack:
    def __init__(self, registry: Registry, env: dict[str, str]):
        self.registry = registry
        self.env = env
        self.commands = procfile_commands(ROOT / "Procfile")

    def _start(self, name: str, command: str, env: dict[str, str]) -> Proc:
        # `exec`: the Procfile's program itself is the process the bench watches and stops.
        return self.registry.start(name, ["/bin/sh", "-c", "exec " + command], env)

    def release(self) -> None:
        done = subprocess.run(
            ["/bin/sh", "-c", "exec " + self.commands["release"]],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"release failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def web(self, port: int) -> Proc:
        proc = self._start("web", self.commands["web"], {**self.env, "PORT": str(port)})
        wait_for_http(f"http://127.0.0.1:{port}/cloud-agent/_system/health", proc)
        return proc

    def workers(self, count: int) -> list[Proc]:
        command = self.commands["worker"]
        if count == 1:
            return [self._start("worker", command, self.env)]
        # Several worker processes on one host need distinct node names (on a PaaS each
        # dyno has its own host name).
        return [
            self._start(f"worker{i}", f"{command} -n worker{i}@%h", self.env)
            for i in range(1, count + 1)
        ]

    def beat(self) -> Proc:
        return self._start("beat", self.commands["beat"], self.env)

    def service(self, port: int, workers: int) -> tuple[list[Proc], list[Proc]]:
        """web, `workers` worker processes and beat, the workers ready to take tasks: (every
        process started, the workers). What was started is stopped if one fails to start."""
        procs: list[Proc] = []
        try:
            procs.append(self.web(port))
            started = self.workers(workers)
            procs += started
            procs.append(self.beat())
            for worker in started:
                worker.wait_for_log(" ready.", 90)
        except BaseException:
            self.registry.stop(*procs)
            raise
        return procs, started
