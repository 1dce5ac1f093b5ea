"""Starting the service's own processes (worker, beat, web) for tests, as the Procfile does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tools.cli import procfile_commands
from tools.processes import ROOT, Process, wait_for_http

BIN = Path(sys.executable).parent


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


def web_command() -> str:
    """The Procfile's `web` line: the suite serves the API as a PaaS would."""
    return procfile_commands(ROOT / "Procfile")["web"]


def start_web(env: dict[str, str], logdir: Path, port: int, command: str | None = None) -> Process:
    """The Procfile's web, or `command` (another way to serve the same app)."""
    web = Process(
        "web",
        # `exec`: the server itself is the process the test watches and stops.
        ["/bin/sh", "-c", "exec " + (command or web_command())],
        process_env({**env, "PORT": str(port)}),
        logdir,
    )
    wait_for_http(f"http://127.0.0.1:{port}/cloud-agent/_system/health", web)
    return web
