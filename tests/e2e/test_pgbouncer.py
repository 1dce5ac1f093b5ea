"""The service behind PgBouncer in transaction mode, as a PaaS with a connection pooler runs it:
the web and the worker reach PostgreSQL only through PgBouncer, with
DATABASE_PREPARED_STATEMENTS=false, and every event is delivered."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Publisher, Stack, wait_for_arrivals
from tests.processes import Process
from tools.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(base_env):
    url = base_env["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("PgBouncer in front of PostgreSQL (TEST_DATABASE_URL)")
    if not os.path.exists(PGBOUNCER):
        pytest.skip("no pgbouncer (apt-get install pgbouncer)")
    parts = urlsplit(url)
    # A folder PgBouncer's own user can read: it refuses to run as root.
    folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    (folder / "users.txt").write_text(f'"{parts.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={parts.hostname} port={parts.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
"""
    )
    for path in folder.iterdir():
        path.chmod(0o644)
    user = ["-u", "postgres"] if os.geteuid() == 0 else []
    process = Process(
        "pgbouncer", [PGBOUNCER, *user, str(folder / "pgbouncer.ini")], dict(os.environ), folder
    )
    time.sleep(1.0)
    assert process.alive(), process.log_tail()
    yield url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{port}")
    process.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_web_and_worker_run_through_pgbouncer_in_transaction_mode(
    pgbouncer, service_env, receiver, tmp_path
):
    env = {**service_env, "DATABASE_URL": pgbouncer, "DATABASE_PREPARED_STATEMENTS": "false"}
    stack = Stack(env, tmp_path / "logs")
    stack.logdir.mkdir()
    try:
        web = stack.web()
        stack.beat(), stack.worker(), stack.worker()
        tenant = web.api.onboard("pooled")
        tenant.add_webhook(receiver.url("/pooled"))
        publisher = Publisher(tenant, threads=4).start(count=200)
        publisher.join()
        assert publisher.answered == {202: 200}
        assert wait_for_arrivals(receiver, "/pooled", 200, timeout=120) == 200
    finally:
        stack.close()
