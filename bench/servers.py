"""The same API under two HTTP servers: gunicorn gthread (the Procfile's `web`) and granian.

Each server runs alone (no worker: the API is measured, as in ingest) with as many processes
as gunicorn has workers (WEB_CONCURRENCY, 2) and as many application threads per process
(WEB_THREADS, 8). For each, three loads in turn, each after its own warm-up:

- closed loop from 16 keep-alive connections (2 bench.load processes × 8 threads): accepted
  events/s and request latency;
- open loop at 200 and at 400 events/s (32 client threads, as the latency scenarios): request
  latency p50 / p95 / p99, and whether the rate was sustained.

Under each load the CPU of every process of the server (master and workers) is divided by the
events it accepted meanwhile, warm-up included. At the end the events stored are checked
against the 202 answers.

gunicorn runs as the Procfile starts it; granian as `cloud-agent-webhooks web` (tools/web.py)
starts it. Both run the migrations before serving, call gc.freeze() once the app is loaded, and
write an access log.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text

from bench.context import Context, CpuMeter
from bench.fixtures import clear_events, flush_redis
from bench.paced import INGEST_PROCESSES, INGEST_THREADS, PACED_THREADS, _load, _ms
from bench.procs import Proc, descendants, free_port, status_kb
from bench.report import percentile
from tools.processes import wait_for_http

SERVERS = ("gunicorn", "granian")
GRANIAN = "cloud-agent-webhooks web"


def _shape(ctx: Context) -> tuple[int, int]:
    """(processes, threads per process), as both servers read them."""
    env = ctx.stack.env
    return int(env.get("WEB_CONCURRENCY") or 2), int(env.get("WEB_THREADS") or 8)


def _start(ctx: Context, server: str, port: int) -> Proc:
    if server == "gunicorn":  # the Procfile's web
        return ctx.stack.web(port)
    env = {**ctx.stack.env, "PORT": str(port)}
    proc = ctx.registry.start(f"web-{server}", ["/bin/sh", "-c", "exec " + GRANIAN], env)
    wait_for_http(f"http://127.0.0.1:{port}/cloud-agent/_system/health", proc)
    return proc


def _phase(ctx: Context, name: str, proc: Proc, commands: list[list[str]]) -> dict:
    opts = ctx.options
    meter = CpuMeter({"web": [proc.pid]}, ctx)
    meter.start()
    outs = ctx.run_jobs(name, commands, opts.duration + 90)
    cpu = meter.stop()
    flush_redis(ctx.redis_url)  # the delivery tasks no worker takes
    requests = [r for out in outs for r in out["requests"]]
    accepted = sorted(r[1] for r in requests if r[2] == 202)
    warmup = {key: sum(out["warmup"][key] for out in outs) for key in ("requests", "accepted")}
    answered = len(accepted) + warmup["accepted"]
    return {
        "requests": len(requests),
        "accepted": len(accepted),
        "answers": dict(Counter(str(r[2]) for r in requests)),
        "warmup": warmup,
        "errors": len(requests) - len(accepted) + warmup["requests"] - warmup["accepted"],
        "achieved_rate": round(len(accepted) / opts.duration, 1),
        "late_sends": sum(out["late"] for out in outs),
        "unsent": sum(out["unsent"] for out in outs),
        "p50_ms": _ms(percentile(accepted, 50)),
        "p95_ms": _ms(percentile(accepted, 95)),
        "p99_ms": _ms(percentile(accepted, 99)),
        "cpu_seconds": cpu,
        "web_cpu_ms_per_event": round(cpu["web"] * 1000 / answered, 3) if answered else None,
    }


def _measure(ctx: Context, server: str) -> dict:
    opts = ctx.options
    clear_events(ctx.db)
    flush_redis(ctx.redis_url)
    port = free_port()
    key = [ctx.tenants["drain"].api_key]
    processes, threads = _shape(ctx)
    proc = _start(ctx, server, port)
    result: dict = {"processes": processes, "threads": threads}
    try:
        closed = _load(ctx, port, key, threads=INGEST_THREADS)
        result["closed"] = _phase(ctx, f"{server}-closed", proc, [closed] * INGEST_PROCESSES)
        result["closed"]["connections"] = INGEST_PROCESSES * INGEST_THREADS
        for rate in (opts.latency_rate, opts.latency_high_rate):
            command = _load(ctx, port, key, rate=rate, threads=PACED_THREADS)
            phase = _phase(ctx, f"{server}-{rate:g}", proc, [command])
            result[f"rate_{rate:g}"] = {"rate": rate, **phase}
        peak = max((status_kb(pid, "VmHWM") for pid in descendants(proc.pid)), default=0)
        result["peak_process_rss_mb"] = round(peak / 1024, 1)
        result["process_count"] = len(descendants(proc.pid))
    finally:
        ctx.registry.stop(proc)
    with ctx.db.engine.connect() as connection:
        result["events_stored"] = connection.execute(text("SELECT count(*) FROM events")).scalar()
    result["answered_202"] = sum(
        phase["accepted"] + phase["warmup"]["accepted"]
        for phase in result.values()
        if isinstance(phase, dict) and "warmup" in phase
    )
    clear_events(ctx.db)
    return result


def web_servers(ctx: Context) -> dict:
    opts = ctx.options
    result: dict = {"rates": [opts.latency_rate, opts.latency_high_rate], "servers": {}}
    for server in SERVERS:
        try:
            result["servers"][server] = _measure(ctx, server)
        except Exception as exc:  # one server failing must not hide the other's figures
            result["servers"][server] = {"error": f"{type(exc).__name__}: {exc}"}
    result["versions"] = _versions()
    return result


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in SERVERS:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found
