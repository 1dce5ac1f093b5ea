"""Every process of the Procfile refuses a bad setting at start with one line naming it."""

import subprocess

import pytest

from tests.processes import BIN, process_env
from tools.processes import ROOT

COMMANDS = [
    ["cloud-agent-webhooks", "migrate"],
    ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
    ["celery", "-A", "worker.celery_app", "worker", "--pool=solo"],
]


def _start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=process_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_processes_refuse_to_start_with_one_line(command):
    done = _start(command, {"GLOBAL_WEBHOOK_URL": "ftp://example.com"})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "GLOBAL_WEBHOOK_URL" in line]
    assert len(lines) == 1
    assert "must be an absolute http(s) URL" in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_processes_refuse_to_start_without_the_encryption_key(command):
    done = _start(command, {"SECRET_ENCRYPTION_KEY": ""})
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "SECRET_ENCRYPTION_KEY" in line]
    assert len(lines) == 1
    assert "required" in lines[0]
