"""Schemathesis against the service over HTTP, every phase and every check, the stateful phase
included: no server error, no schema-valid request rejected, no answer that breaks the document.

One run as a tenant (webhooks, events, deliveries) and one as the operator (wallets, IAM), each
with only its own key, so every request is one the document describes for its caller. A fixed
seed and a bounded number of examples keep the run repeatable and short.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from werkzeug.serving import make_server

from app.openapi import TOKEN_PATTERN
from shared.validation import MAX_HEADER_NAME_LENGTH, RESERVED_HEADERS
from tests.helpers import ADMIN_TOKEN, DEFAULT_WALLET_KEY

pytestmark = pytest.mark.slow
# The per-wallet webhook limit (422) depends on what earlier cases registered, not on the request.
SERVICE_ENV = {"MAX_WEBHOOKS_PER_WALLET": "10000"}
ADMIN_ROUTES = "/cloud-agent/(wallets|iam)"
# NUL cannot be stored in PostgreSQL text; the service refuses it with a 400 that OpenAPI 3.0
# has no way to announce for every string, so the run does not generate it.
CONFIG = """
seed = 20240612
suppress-health-check = ["all"]
[generation]
max-examples = 25
deterministic = true
allow-x00 = false
[checks]
enabled = true
# 422 answers what already exists (a wallet or entity id, a seed) or a reached limit: the state
# the earlier cases left, not the request's shape. Each operation documents it.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


@schemathesis.hook("filter_body")
def header_names_as_documented(context, body) -> bool:
    """Generate header names as the document's `propertyNames` says.

    Schemathesis drops `propertyNames` on a nullable object, and no OpenAPI 3.0 keyword says
    that two names differing only in letter case are one header.
    """
    headers = body.get("customHeaders") if isinstance(body, dict) else None
    if not isinstance(headers, dict) or not context.operation.path.endswith("/events/webhooks"):
        return True
    names = [name.lower() for name in headers]
    return len(set(names)) == len(names) and all(
        re.match(TOKEN_PATTERN, name)
        and len(name) <= MAX_HEADER_NAME_LENGTH
        and name not in RESERVED_HEADERS
        and not name.startswith("webhook-")
        for name in names
    )


@pytest.fixture
def served(app):
    """The app on a real HTTP server in this process, on a free port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cloud-agent/openapi.json"
    server.shutdown()


def run(url: str, headers: dict[str, str], admin: bool) -> tuple[Counter, Counter, list[str]]:
    """Scenarios per phase, test cases run, and one line per failed check."""
    header_lines = "\n".join(f'{name} = "{value}"' for name, value in headers.items())
    config = SchemathesisConfig.from_str(CONFIG + "[headers]\n" + header_lines + "\n")
    schema = schemathesis.openapi.from_url(url, config=config)
    schema = (
        schema.include(path_regex=ADMIN_ROUTES)
        if admin
        else schema.exclude(path_regex=ADMIN_ROUTES)
    )
    phases, cases, failures = Counter(), Counter(), []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phases[event.phase.value] += 1
            cases[event.phase.value] += len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is not None:
                        node = event.recorder.cases.get(case_id)
                        request = (
                            f"{node.value.method} {node.value.path} {node.value.body!r:.3000}"
                            if node
                            else "?"
                        )
                        failure = check.failure_info.failure
                        failures.append(f"{event.phase.value} {check.name}: {request} {failure}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"{type(event).__name__}: {getattr(event, 'value', event)}")
    return phases, cases, failures


@pytest.mark.parametrize(
    "headers, admin",
    [({"apikey": DEFAULT_WALLET_KEY}, False), ({"x-admin-api-key": ADMIN_TOKEN}, True)],
    ids=["tenant", "operator"],
)
def test_every_phase_and_check_passes(served, headers, admin):
    phases, cases, failures = run(served, headers, admin)
    assert failures == [], "\n".join(failures)
    assert set(phases) >= {"examples", "coverage", "fuzzing", "stateful"}
    assert cases["stateful"] > 0 and sum(cases.values()) > 100
