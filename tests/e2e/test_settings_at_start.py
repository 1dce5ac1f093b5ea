"""Every process of the Procfile refuses a bad setting at start with one line naming it."""

import subprocess

import pytest

from tests.processes import BIN, process_env
from tools.processes import ROOT


@pytest.mark.parametrize(
    "command",
    [
        ["cloud-agent-webhooks", "migrate"],
        ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
        ["celery", "-A", "worker.celery_app", "worker", "--pool=solo"],
    ],
)
def test_processes_refuse_to_start_with_one_line(command):
    env = process_env({"GLOBAL_WEBHOOK_URL": "ftp://example.com"})
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "GLOBAL_WEBHOOK_URL" in line]
    assert len(lines) == 1
    assert "must be an absolute http(s) URL" in lines[0]
