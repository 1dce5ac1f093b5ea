"""Trace context: which producer `traceparent` is kept, what a receiver gets without one, and
that with no OTLP endpoint no span or exporter code is even loaded."""

import os
import subprocess
import sys
import uuid

import pytest

from shared.tracing import event_traceparent, valid_traceparent
from tests.helpers import TEST_ENCRYPTION_KEY
from tools.processes import ROOT

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "given, kept",
    [
        (f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01"),
        (f"  00-{TRACE}-{PARENT}-00 ", f"00-{TRACE}-{PARENT}-00"),
        # A later version is read as version 00, its extra fields left out.
        (f"01-{TRACE}-{PARENT}-01-more", f"00-{TRACE}-{PARENT}-01"),
        (f"00-{TRACE}-{PARENT}-01-more", None),
        (f"ff-{TRACE}-{PARENT}-01", None),
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{PARENT}-01", None),
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        ("", None),
        (None, None),
    ],
)
def test_a_producers_traceparent_is_kept_only_when_valid(given, kept):
    assert valid_traceparent(given) == kept


def test_an_event_without_one_is_a_trace_of_its_own_id():
    event_id = uuid.uuid4()
    made = event_traceparent(None, event_id)
    assert made == valid_traceparent(made)  # valid W3C
    assert made.split("-")[1] == event_id.hex and made.endswith("-00")
    assert event_traceparent(f"00-{TRACE}-{PARENT}-01", event_id) == f"00-{TRACE}-{PARENT}-01"


def test_without_an_endpoint_neither_the_tracing_sdk_nor_an_exporter_is_loaded():
    # (redis-py imports OpenTelemetry's metrics SDK when it is installed, for an observability
    # of its own that stays off unless a program turns it on: not a cost of ours.)
    code = (
        "import sys\n"
        "from app import create_app\n"
        "from shared.services.delivery import Deliverer\n"
        "from shared.settings import load_settings\n"
        "from shared.tracing import tracing_for\n"
        "import worker.dispatch\n"
        "settings = load_settings({'SECRET_KEY': 'k' * 32})\n"
        "tracing = tracing_for(settings, 'web')\n"
        "with tracing.publish('00-" + TRACE + "-" + PARENT + "-01', None) as trace:\n"
        "    assert trace.traceparent.startswith('00-" + TRACE + "')\n"
        "ours = ('shared.tracing_export', 'opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(name for name in sys.modules if name.startswith(ours)))\n"
    )
    env = {**os.environ, "SECRET_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
