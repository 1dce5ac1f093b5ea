"""Processes started the way a platform starts them: each in its own process group (so that
stopping one stops its children too), its output in a log file. Used by the test suite and
the benchmarks to run the Procfile's processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    def __init__(self, name: str, command: list[str], env: dict, logdir: Path, stdout=None):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        number = 1
        while self.log_path.exists():  # one log per process: worker.log, worker-2.log, …
            number += 1
            self.log_path = logdir / f"{name}-{number}.log"
        self._log = open(self.log_path, "wb")
        self.started = time.time()
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=stdout or self._log,
            stderr=self._log if stdout else subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: no {text!r} within {timeout}s:\n{self.log_tail()}")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Send `sig` to the whole group and wait for the leader."""
        if self.alive():
            os.killpg(self.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; children left behind are killed too."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=wait)
                os.killpg(self.pid, signal.SIGKILL)  # the leader is gone; its group may not be
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        self._log.close()


def wait_for_http(url: str, process: Process | None = None, timeout: float = 60.0) -> None:
    """Until `url` answers 200; fails early when `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        time.sleep(0.2)
    tail = process.log_tail() if process is not None else ""
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s:\n{tail}")
