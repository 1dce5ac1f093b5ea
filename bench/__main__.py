"""python -m bench [--quick] [--only drain,latency] [--workers 2] [--profile] [--json PATH]"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.procs import ROOT

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/webhooks_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
SCENARIOS = (
    "ceiling", "baseline", "floor", "floor_paced", "drain", "ingest", "latency", "latency_high",
    "isolation", "isolation_alone", "isolation_same_host", "isolation_many_hosts", "outage",
    "purge", "batch", "ordered", "fairness", "slow_healthy", "locks", "scale_out", "size",
    "burst", "web_servers",
)  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller and shorter runs of every scenario (about 15 minutes on 2 cores)",
    )
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--events", type=int, help="drain backlog (20,000; quick: 2,000)")
    parser.add_argument("--duration", type=float, help="seconds of load (30; quick: 8)")
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", os.cpu_count() or 1)),
        help="worker processes, each the Procfile's `worker` (default: one per core, as the"
        " README advises and as the baseline's prefork pool has)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-concurrency", type=int, default=os.cpu_count() or 2,
        help="prefork processes of the naive baseline (Celery's default: the CPU count)",
    )  # fmt: skip
    parser.add_argument("--latency-rate", type=float, default=200.0, help="events/s (200)")
    parser.add_argument(
        "--latency-high-rate", type=float, default=400.0, help="latency_high's events/s (400)"
    )
    parser.add_argument("--isolation-rate", type=float, default=100.0, help="events/s (100)")
    parser.add_argument(
        "--outage-seconds", type=float, help="how long the outage receiver refuses (600; quick: 60)"
    )
    parser.add_argument(
        "--window", type=float,
        help="seconds of load after the disturbance of fairness, slow_healthy and locks"
        " (60; quick: 20)",
    )  # fmt: skip
    parser.add_argument(
        "--size-rows", type=int,
        help="deliveries (and about as many attempts) in the size scenario's history"
        " (10,000,000; quick: 1,000,000)",
    )  # fmt: skip
    parser.add_argument(
        "--burst-events", type=int, help="single events in the burst scenario (5,000; quick: 2,000)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker and the web")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    args.only = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def configure_environment() -> tuple[str, str, str]:
    """The servers to use, set before any service module reads the settings."""
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    baseline_url = os.environ.get("BASELINE_REDIS_URL") or _next_db(redis_url)
    if baseline_url == redis_url:
        raise SystemExit("bench: BASELINE_REDIS_URL must differ from REDIS_URL")
    os.environ.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, BASELINE_REDIS_URL=baseline_url
    )
    # Scenarios that publish in this process (ordered, batch) import the worker's settings.
    from bench.stack import BENCH_SECRET_ENCRYPTION_KEY

    os.environ.setdefault("SECRET_ENCRYPTION_KEY", BENCH_SECRET_ENCRYPTION_KEY)
    return database_url, redis_url, baseline_url


def _next_db(redis_url: str) -> str:
    """The baseline's Redis database: the service's number + 1 (9 → 10 by default)."""
    head, _, number = redis_url.rpartition("/")
    if head.endswith(":") or not number.isdigit():  # no database number given: it is 0
        return redis_url.rstrip("/") + "/1"
    return f"{head}/{int(number) + 1}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    urls = configure_environment()
    signal.signal(signal.SIGTERM, _interrupt)
    # Also when a shell started the bench in the background, with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    from bench import report
    from bench.context import Options
    from bench.procs import Registry, load_average

    options = Options(
        events=args.events or (2_000 if args.quick else 20_000),
        duration=args.duration or (8.0 if args.quick else 30.0),
        outage_seconds=args.outage_seconds or (60.0 if args.quick else 600.0),
        window=args.window or (20.0 if args.quick else 60.0),
        size_rows=args.size_rows or (1_000_000 if args.quick else 10_000_000),
        burst_events=args.burst_events or (2_000 if args.quick else 5_000),
        warmup=2.0 if args.quick else 3.0,
        ceiling_seconds=3.0 if args.quick else 8.0,
        tail_seconds=8.0 if args.quick else 10.0,
        publish_timeout=30.0 if args.quick else 75.0,
        drain_timeout=60.0 if args.quick else 100.0,
        baseline_timeout=45.0 if args.quick else 75.0,
        workers=args.workers,
        baseline_concurrency=args.baseline_concurrency,
        profile=args.profile,
        latency_rate=args.latency_rate,
        latency_high_rate=args.latency_high_rate,
        isolation_rate=args.isolation_rate,
    )
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    payload = {
        "command": command.strip(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_before": load_average(),
        "options": vars(options),
        "servers": dict(zip(("database", "redis", "baseline_redis"), urls, strict=True)),
    }
    # Per database: two benches on their own servers do not share (or wipe) each other's logs.
    registry = Registry.fresh(ROOT / "var" / "bench" / urls[0].rsplit("/", 1)[-1])
    began = time.monotonic()
    try:
        results = run(args.only, options, urls, registry, payload)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything it started", file=sys.stderr)
        return 130
    finally:
        registry.stop_all()
    payload.update(
        results=results,
        peak_rss_mb={role: round(kb / 1024, 1) for role, kb in registry.peak_rss_kb.items()},
        elapsed_s=round(time.monotonic() - began, 1),
        load_average_after=load_average(),
    )
    all_rows = report.rows(results, payload["peak_rss_mb"])
    print(report.table(all_rows))
    note = report.busy_note(results, os.cpu_count() or 1)
    if note:
        print("\n" + note)
        payload["busy_note"] = note
    print("\n" + _time_spent(results))
    print(
        f"\n{payload['elapsed_s']:.0f} s; load average before {payload['load_average_before']},"
        f" after {payload['load_average_after']}; figures in {args.json}"
    )
    report.write_json(args.json, payload, all_rows)
    return 0


def _time_spent(results: dict[str, dict]) -> str:
    """Seconds per scenario, longest first: where the run's time went."""
    spent = sorted(
        ((name, result.get("elapsed_s", 0.0)) for name, result in results.items()),
        key=lambda item: -item[1],
    )
    return "seconds per scenario: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in spent)


def run(names, options, urls, registry, payload) -> dict[str, dict]:
    """Prepare the servers, the receiver and the tenants; then each scenario in turn."""
    from bench import fairness, health, locks, paced, producers, scale_out, scenarios, size
    from bench import purge as purge_scenario
    from bench.burst import burst
    from bench.context import Context
    from bench.fixtures import flush_redis, make_tenant, recreate_database, server_versions
    from bench.procs import machine_facts
    from bench.receiver import ReceiverClient
    from bench.servers import web_servers
    from bench.stack import Stack, service_env
    from shared.db import Database
    from shared.settings import load_settings

    database_url, redis_url, baseline_url = urls
    recreate_database(database_url)
    flush_redis(redis_url)
    flush_redis(baseline_url)
    stack = Stack(registry, service_env(database_url, redis_url, registry.logdir))
    stack.release()
    settings = load_settings(stack.env)  # the same settings (and key) as the stack
    db = Database(settings.database_url)
    try:
        command = [sys.executable, "-m", "bench.receiver"]
        receiver_proc = registry.start("receiver", command, None, stdout=subprocess.PIPE)
        ready = receiver_proc.popen.stdout.readline().split()
        if len(ready) < 3:
            raise RuntimeError(f"the receiver did not start:\n{receiver_proc.log_tail()}")
        receiver = ReceiverClient(int(ready[1]), [int(port) for port in ready[2:]])
        ctx = Context(
            options, registry, stack, db, settings, receiver, receiver_proc.pid,
            redis_url, baseline_url, registry.logdir,
        )  # fmt: skip
        for name, path in (("drain", "/hook"), ("latency", "/latency"), ("healthy", "/healthy")):
            ctx.tenants[name] = make_tenant(db, settings, name, receiver.url(path))
        ctx.tenants["stalled"] = make_tenant(db, settings, "stalled", receiver.stalled_url())
        health.make_tenants(ctx)
        payload["machine"] = {**machine_facts(), **server_versions(db, redis_url)}
        runners = {
            "ceiling": scenarios.ceiling,
            "baseline": scenarios.baseline,
            "floor": scenarios.celery_floor,
            "floor_paced": scenarios.celery_floor_paced,
            "drain": scenarios.drain,
            "ingest": paced.ingest,
            "latency": paced.latency,
            "latency_high": paced.latency_high,
            "isolation": paced.isolation,
            "isolation_alone": health.isolation_alone,
            "isolation_same_host": health.isolation_same_host,
            "isolation_many_hosts": health.isolation_many_hosts,
            "outage": health.outage,
            "purge": purge_scenario.purge,
            "batch": producers.batch,
            "ordered": producers.ordered,
            "fairness": fairness.fairness,
            "slow_healthy": fairness.slow_healthy,
            "locks": locks.locks,
            "scale_out": scale_out.scale_out,
            "size": size.size,
            "burst": burst,
            "web_servers": web_servers,
        }
        results: dict[str, dict] = {}
        for name in names:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                results[name] = runners[name](ctx)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                traceback.print_exc()
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["elapsed_s"] = round(time.monotonic() - started, 1)
        return results
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
