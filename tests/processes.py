"""Starting the service's own processes (worker, beat, web) for tests, as the Procfile does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Process:
    def __init__(self, name: str, command: list[str], env: dict[str, str], logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: no {text!r} within {timeout}s:\n{self.log()[-3000:]}")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def process_env(env: dict[str, str]) -> dict[str, str]:
    full = dict(os.environ)
    full.update(env)
    full["PATH"] = f"{BIN}{os.pathsep}{full.get('PATH', '')}"
    full.setdefault("PYTHONUNBUFFERED", "1")
    return full


def start_worker(env: dict[str, str], logdir: Path, concurrency: int = 16) -> Process:
    worker = Process(
        "worker",
        [
            str(BIN / "celery"),
            "-A",
            "worker.celery_app",
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--queues=webhooks,webhooks.retry",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        process_env(env),
        logdir,
    )
    worker.wait_for_log(" ready.")
    return worker


def start_beat(env: dict[str, str], logdir: Path) -> Process:
    beat = Process(
        "beat",
        [
            str(BIN / "celery"),
            "-A",
            "worker.celery_app",
            "beat",
            "--loglevel=INFO",
            f"--schedule={logdir / 'beat-schedule'}",
        ],
        process_env(env),
        logdir,
    )
    beat.wait_for_log("beat: Starting...")
    return beat


def start_web(env: dict[str, str], logdir: Path, port: int) -> Process:
    web = Process(
        "web",
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"],
        process_env({**env, "PORT": str(port)}),
        logdir,
    )
    wait_for_http(f"http://127.0.0.1:{port}/cloud-agent/_system/health", web)
    return web


def wait_for_http(url: str, process: Process | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process is not None and process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early:\n{process.log()[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")
