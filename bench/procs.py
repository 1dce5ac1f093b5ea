"""Processes the bench starts (each in its own process group, all stopped at the end) and what
/proc says about them: memory and CPU time (psutil is not a dependency)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import threading
from pathlib import Path

from tools.processes import ROOT, Process, free_port  # noqa: F401 - re-exported

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


Proc = Process  # the name the bench uses
# The service's own processes, as Stack names them (the bench's helpers are not counted).
SERVICE_PROCESS = re.compile(r"(web|worker\d*|beat)")


class Registry:
    """Every process the bench started, so that all of them stop, whatever happens."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: list[Proc] = []
        # The largest peak RSS (VmHWM) of a single service process, by role, over the run.
        self.peak_rss_kb: dict[str, int] = {}

    @classmethod
    def fresh(cls, logdir: Path) -> Registry:
        """A registry whose logs go to an emptied `logdir`."""
        shutil.rmtree(logdir, ignore_errors=True)
        logdir.mkdir(parents=True)
        return cls(logdir)

    def start(self, name: str, command: list[str], env: dict, stdout=None) -> Proc:
        proc = Proc(name, command, env, self.logdir, stdout)
        self.procs.append(proc)
        return proc

    def stop(self, *procs: Proc, grace: float = 10.0) -> None:
        for proc in procs:
            if SERVICE_PROCESS.fullmatch(proc.name):
                role = proc.name.rstrip("0123456789")
                peak = max((status_kb(pid, "VmHWM") for pid in descendants(proc.pid)), default=0)
                self.peak_rss_kb[role] = max(self.peak_rss_kb.get(role, 0), peak)
            proc.stop(grace)
            if proc in self.procs:
                self.procs.remove(proc)

    def stop_all(self) -> None:
        self.stop(*reversed(self.procs), grace=3.0)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # fields from the 3rd (state) on


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_by_process(pids) -> dict[tuple[int, str], float]:
    """User + system CPU seconds of each live process (and its reaped children), keyed by
    (pid, start time) so that a reused pid counts as a new process."""
    found = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            found[(pid, fields[19])] = sum(int(value) for value in fields[11:15]) / TICK
    return found


def pids_named(name: str, mentioning: str = "") -> list[int]:
    """Processes called `name` whose command line contains `mentioning` (e.g. a port)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() != name:
                    continue
                if mentioning.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK, sum(values[:8]) / TICK


def machine_facts() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class MemorySampler:
    """Samples the RSS of process trees; keeps the peak sum and the peak single process."""

    def __init__(self, roots: list[int], interval: float = 0.5):
        self.roots = roots
        self.interval = interval
        self.peak_tree_kb = 0
        self.peak_process_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        pids = [pid for root in self.roots for pid in descendants(root)]
        sizes = [status_kb(pid, "VmRSS") for pid in pids]
        hwms = [status_kb(pid, "VmHWM") for pid in pids]
        self.peak_tree_kb = max(self.peak_tree_kb, sum(sizes))
        self.peak_process_kb = max([self.peak_process_kb, *sizes, *hwms])

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
