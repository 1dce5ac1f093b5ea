"""Optional sampling profiles of the worker (`--profile`, needs py-spy: pip install py-spy).

py-spy records only the thread holding the GIL (`--gil`): in a GIL-bound worker that is where
the CPU goes. The raw (collapsed) stacks land in var/bench/<database>/; the report lists the
functions with the largest share of the samples, inclusive and self.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

from bench.procs import BIN, Proc, Registry


def py_spy() -> str | None:
    local = BIN / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(registry: Registry, name: str, pid: int) -> tuple[Proc, Path] | None:
    binary = py_spy()
    if binary is None:
        return None
    out = registry.logdir / f"profile-{name}.txt"
    command = [binary, "record", "--pid", str(pid), "--gil", "--rate", "100"]
    command += ["--format", "raw", "--output", str(out), "--subprocesses"]
    return registry.start(f"py-spy-{name}", command, None), out


def stop(registry: Registry, started: tuple[Proc, Path] | None, top: int = 30) -> dict | None:
    if started is None:
        return None
    proc, out = started
    try:
        os.killpg(proc.pid, signal.SIGINT)  # py-spy writes its file on Ctrl-C
        proc.popen.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    registry.stop(proc, grace=2.0)
    return summarize(out, top) if out.exists() else None


def summarize(path: Path, top: int) -> dict:
    """Shares of the samples by function: inclusive (on the stack) and self (at the top)."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    packages: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        raw = stack.split(";")
        frames = [_short(frame) for frame in raw]
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
        packages[_package(raw[-1])] += samples
    if not total:
        return {"samples": 0}
    share = lambda counter: [  # noqa: E731
        [name, round(100 * n / total, 1)] for name, n in counter.most_common(top)
    ]
    return {
        "samples": total,
        "self_by_package_pct": share(packages),
        "inclusive_pct": share(inclusive),
        "self_pct": share(own),
    }


def _short(frame: str) -> str:
    """`function (path/to/module.py:123)` → `function (module.py)`, so that lines merge."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


def _package(frame: str) -> str:
    """The package a frame's code belongs to: `sqlalchemy`, `kombu`, `logging`, `shared`…

    py-spy names files relative to their sys.path entry (`sqlalchemy/engine/base.py`).
    """
    path = frame.partition(" (")[2].rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return path.lstrip("/").split("/", 1)[0].removesuffix(".py") or frame
