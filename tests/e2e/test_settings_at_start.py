"""Every process of the Procfile refuses a bad setting at start with one line naming it."""

import shlex
import subprocess

import pytest

from tests.processes import BIN, process_env, web_command
from tools.processes import ROOT

WEB = shlex.split(web_command())
GRANIAN = ["cloud-agent-webhooks", "web"]  # the same app under granian
COMMANDS = [
    ["cloud-agent-webhooks", "migrate"],
    WEB,
    GRANIAN,
    ["celery", "-A", "worker.celery_app", "worker", "--pool=solo"],
]


def lines_naming(variable: str, command: list[str], env: dict) -> list[str]:
    """Start `command`; it must stop with status 2: the lines of its stderr naming `variable`."""
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    return [line for line in done.stderr.splitlines() if variable in line]


@pytest.mark.parametrize("command", COMMANDS)
def test_processes_refuse_to_start_with_one_line(command):
    env = process_env({"GLOBAL_WEBHOOK_URL": "ftp://example.com"})
    lines = lines_naming("GLOBAL_WEBHOOK_URL", command, env)
    assert len(lines) == 1
    assert "must be an absolute http(s) URL" in lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_processes_refuse_to_start_without_the_encryption_key(command):
    lines = lines_naming(
        "SECRET_ENCRYPTION_KEY", command, process_env({"SECRET_ENCRYPTION_KEY": ""})
    )
    assert len(lines) == 1
    assert "required" in lines[0]


@pytest.mark.parametrize("command", [WEB, GRANIAN, ["cloud-agent-webhooks", "run"]])
def test_web_refuses_to_start_in_production_without_a_secret_key(command):
    env = process_env({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    env.pop("SECRET_KEY", None)
    lines = lines_naming("SECRET_KEY", command, env)
    assert len(lines) == 1
    assert "required in production" in lines[0]
