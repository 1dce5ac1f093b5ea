"""The Procfile's processes started one by one, as a PaaS starts them, and the seed's curl."""

import http.client
import json
import signal
from pathlib import Path

import pytest

from tests.helpers import DEFAULT_WALLET_KEY as TENANT_KEY
from tests.helpers import connection_event
from tests.processes import process_env
from tools.cli import procfile_commands
from tools.processes import ROOT, Process, free_port, wait_for_http

pytestmark = pytest.mark.slow


def shell(name: str, command: str, env: dict, logdir: Path) -> Process:
    return Process(name, ["/bin/sh", "-c", f"exec {command}"], process_env(env), logdir)


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    payload = None if body is None else json.dumps(body)
    connection.request(method, path, body=payload, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data else None)


def test_procfile_processes_serve_the_seed_example(base_env, logdir, receiver):
    commands = procfile_commands(ROOT / "Procfile")
    assert set(commands) == {"release", "web", "worker", "beat"}
    port = free_port()
    env = {
        **base_env,
        "PORT": str(port),
        "BEAT_SCHEDULE_FILE": str(logdir / "procfile-beat-schedule"),
        "WORKER_CONCURRENCY": "8",
    }
    release = shell("release", commands["release"], env, logdir)
    assert release.popen.wait(timeout=120) == 0, release.log()
    started = []
    try:
        for name in ("web", "worker", "beat"):
            started.append(shell(name, commands[name], env, logdir))
        wait_for_http(f"http://127.0.0.1:{port}/cloud-agent/_system/health", started[0])
        started[1].wait_for_log(" ready.")

        # The seed's curl, header spelling included.
        status, body = request(
            port,
            "POST",
            "/cloud-agent/events/webhooks",
            body={"url": receiver.url("/seed")},
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "apiKey": TENANT_KEY,
            },
        )
        assert status == 200, body
        assert {"id", "url", "customHeaders", "createdAt"} <= set(body)
        assert body["url"] == receiver.url("/seed") and body["customHeaders"] == {}

        status, envelope = request(
            port,
            "POST",
            "/cloud-agent/events",
            body={"type": "ConnectionUpdated", "data": connection_event()},
            headers={"Content-Type": "application/json", "apikey": TENANT_KEY},
        )
        assert status == 202
        arrived = receiver.wait_for("/seed", 1, timeout=30)
        assert len(arrived) == 1
        assert json.loads(arrived[0].body)["id"] == envelope["id"]
        # Secrets never reach a log.
        for process in (release, *started):
            assert TENANT_KEY not in process.log()
    finally:
        for process in started:
            process.kill(signal.SIGTERM)
            process.stop()
