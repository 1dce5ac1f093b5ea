"""`webhook-logger`, the receiver for people trying the service: the real console script in a
subprocess, real HTTP, and what it prints."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from shared.signing import generate_secret
from tools.processes import free_port

SCRIPT = Path(sys.executable).parent / "webhook-logger"
EVENT = {"type": "ConnectionUpdated", "id": str(uuid.uuid4()), "data": {"state": "Invited"}}


class Logger:
    """One `webhook-logger` process, stdout and stderr in files so its flushing is tested too."""

    def __init__(self, workdir: Path, *args: str):
        self.port = free_port()
        self.out_path, self.err_path = workdir / "stdout.txt", workdir / "stderr.txt"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            command = [str(SCRIPT), str(self.port), "--host", "127.0.0.1", *args]
            self.process = subprocess.Popen(command, stdout=out, stderr=err)
        self._wait_until_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.out_path.read_text()

    def errors(self) -> str:
        return self.err_path.read_text()

    def _wait_until_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"webhook-logger exited early:\n{self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"webhook-logger not listening on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_logger(tmp_path):
    started: list[Logger] = []

    def start(*args: str) -> Logger:
        workdir = tmp_path / f"logger-{len(started)}"
        workdir.mkdir()
        started.append(Logger(workdir, *args))
        return started[-1]

    yield start
    for logger in started:
        logger.stop()


def signed_headers(secret: str, body: str, at: datetime | None = None) -> dict[str, str]:
    """Headers as the `standardwebhooks` library signs them: an independent implementation."""
    msg_id, at = str(uuid.uuid4()), at or datetime.now(UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def test_answers_200_and_prints_the_request_readably(start_logger):
    logger = start_logger()
    response = requests.post(
        f"{logger.url}/hooks/acme",
        json=EVENT,
        headers={"Authorization": "Bearer sk-live-0123456789abcdef", "X-Tenant": "acme"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {"ok": True, "status": 200}

    output = logger.output()
    assert "POST /hooks/acme" in output
    assert json.dumps(EVENT, indent=2) in output  # pretty-printed, key order kept
    assert "Authorization: Bearer sk-l…" in output
    assert "0123456789abcdef" not in output
    assert "X-Tenant: acme" in output  # only secret-looking headers are masked
    assert "→ 200" in output
    assert "\x1b[" not in output  # no colour when stdout is not a terminal


def test_masks_every_secret_looking_header_and_prints_text_bodies(start_logger):
    logger = start_logger()
    secrets = {
        "apikey": "tenant-key-aaaaaaaaaaaa",
        "x-api-key": "other-key-bbbbbbbbbbbb",
        "Cookie": "session=cccccccccccccc",
        "X-Auth-Token": "dddddddddddddddd",
        "X-Client-Secret": "eeeeeeeeeeeeeeee",
    }
    long_text = "not json " + "x" * 5000
    response = requests.post(logger.url, data=long_text, headers=secrets, timeout=5)
    assert response.status_code == 200

    output = logger.output()
    for name, value in secrets.items():
        assert f"{name}: {value[:4]}…" in output
        assert value not in output
    assert "not json xxx" in output
    assert "more characters)" in output  # a long non-JSON body is truncated
    assert "x" * 2100 not in output


def test_get_is_answered_and_logged_and_connections_are_kept_alive(start_logger):
    logger = start_logger("--status", "503")
    connection = http.client.HTTPConnection("127.0.0.1", logger.port, timeout=5)
    try:
        connection.request("GET", "/health-check")
        first = connection.getresponse()
        assert first.status == 200  # a browser check, whatever the webhooks are answered
        first.read()
        connection.request("POST", "/hook", body=b'{"a": 1}')  # the same TCP connection
        second = connection.getresponse()
        assert second.status == 503
        assert json.loads(second.read()) == {"ok": False, "status": 503}
    finally:
        connection.close()
    assert "GET /health-check" in logger.output()


def test_fail_first_answers_500_then_200(start_logger):
    logger = start_logger("--fail-first", "2")
    assert requests.get(logger.url, timeout=5).status_code == 200  # does not use up a failure
    statuses = [requests.post(logger.url, json=EVENT, timeout=5).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    output = logger.output()
    assert "→ 500 (failure 1 of --fail-first 2)" in output
    assert "→ 500 (failure 2 of --fail-first 2)" in output
    assert "(+" in output  # the gap since the previous request, to watch the retry spacing


def test_status_is_answered_always(start_logger):
    logger = start_logger("--status", "503")
    for _ in range(2):
        assert requests.post(logger.url, json=EVENT, timeout=5).status_code == 503
    assert logger.output().count("→ 503") == 2


def test_secret_verifies_standard_webhooks_signatures(start_logger):
    secret = generate_secret()
    logger = start_logger("--secret", secret)
    body = json.dumps(EVENT, separators=(",", ":"))

    valid = requests.post(logger.url, data=body, headers=signed_headers(secret, body), timeout=5)
    assert valid.status_code == 200
    assert "signature: valid" in logger.output()

    tampered = body.replace("Invited", "Accepted")
    headers = signed_headers(secret, body)
    answer = requests.post(logger.url, data=tampered, headers=headers, timeout=5)
    assert answer.status_code == 401
    assert "signature: INVALID (no v1 signature matches" in logger.output()


def test_secret_rejects_old_timestamps_and_missing_headers(start_logger):
    secret = generate_secret()
    logger = start_logger("--secret", secret)
    body = json.dumps(EVENT)
    stale = signed_headers(secret, body, at=datetime.now(UTC) - timedelta(minutes=6))
    assert requests.post(logger.url, data=body, headers=stale, timeout=5).status_code == 401
    assert requests.post(logger.url, data=body, timeout=5).status_code == 401
    output = logger.output()
    assert "signature: INVALID (webhook-timestamp is 36" in output
    assert "signature: INVALID (missing webhook-id" in output


def test_ctrl_c_stops_it_without_a_traceback(start_logger):
    logger = start_logger()
    logger.process.send_signal(signal.SIGINT)
    assert logger.process.wait(timeout=10) == 0
    assert "webhook-logger stopped" in logger.output()
    assert "Traceback" not in logger.errors()


def test_a_malformed_secret_stops_it_at_start():
    result = subprocess.run(
        [str(SCRIPT), str(free_port()), "--secret", "whsec_not base64!"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--secret must be whsec_ followed by base64" in result.stderr
