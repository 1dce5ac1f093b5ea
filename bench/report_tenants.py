"""The table's rows for fairness between tenants and scale-out (contract §10)."""

from __future__ import annotations

import math

from bench.report import Row, ms


def rows(results: dict) -> list[Row]:
    return (
        _fairness(results.get("fairness", {}))
        + _slow_healthy(results.get("slow_healthy", {}))
        + _locks(results.get("locks", {}))
        + _scale_out(results.get("scale_out", {}))
    )


def _three(phase: dict, prefix: str = "") -> str:
    """p50 / p95 / p99 of a phase (`prefix` "api_": the publish request's own latency)."""
    values = [phase[f"{prefix}p{p}_ms"] for p in (50, 95, 99)]
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return "n/a"
    shown = " / ".join("never" if math.isinf(v) else f"{v:,.1f}" for v in values)
    return f"{shown} ms"


def _missing(name: str, phase: dict, label: str) -> list[Row]:
    lost = phase["accepted"] - phase["delivered"]
    if not lost:
        return []
    return [Row(name, f"{label}: events not delivered", f"{lost:,}", "0", False)]


def _fairness(result: dict) -> list[Row]:
    if "calm" not in result:
        return []
    calm, during, burst = result["calm"], result["during"], result["disturbance"]
    rate = f"{result['rate']:g}/s"
    limit = max(2 * calm["p95_ms"], 250.0)
    drained = f"{burst['drain_s']} s" if burst["arrived"] == burst["events"] else (
        f"{burst['arrived']:,} of {burst['events']:,} arrived")  # fmt: skip
    return [
        Row("fairness", f"B at {rate} without A ({calm['accepted']} events): p50 / p95 / p99",
            _three(calm)),
        Row("fairness", f"B while A's burst drains ({during['accepted']} events): "
            "p50 / p95 / p99", _three(during)),
        Row("fairness", "B's publish request itself, without A → during A's burst: p95",
            f"{ms(calm['api_p95_ms'])} → {ms(during['api_p95_ms'])}"),
        Row("fairness", "B from its 202 answer to arrival, without A → during A's burst: p95",
            f"{ms(calm['answered_p95_ms'])} → {ms(during['answered_p95_ms'])}"),
        Row("fairness", "B's p95 during A's burst", ms(during["p95_ms"], 0),
            f"≤ max(2 × {calm['p95_ms']:g}, 250) = {limit:g} ms", during["p95_ms"] <= limit),
        Row("fairness", f"A's {burst['events']:,} events: published in; first sent → last arrival",
            f"{burst['publish_s']} s; {drained}"),
        *_churn("fairness", "A's", burst, result),
        *_missing("fairness", calm, "B without A"),
        *_missing("fairness", during, "B during A's burst"),
    ]  # fmt: skip


def _churn(name: str, whose: str, disturbance: dict, result: dict) -> list[Row]:
    """Parks and releases per delivery, duplicates, and what the sweep had to send."""
    counted = disturbance.get("transitions")
    if not counted:
        return []
    return [
        Row(name, f"{whose} deliveries: park + release rows (statements) per delivery; "
            "duplicates; sent by the sweep",
            f"{counted['rows_per_arrived']:.2f} ({counted['statements_per_arrived']:.2f}); "
            f"{disturbance.get('duplicates', 'n/a')}; {result['sweep_sent']}"),
    ]  # fmt: skip


def _slow_healthy(result: dict) -> list[Row]:
    if "slow" not in result:
        return []
    calm, during, slow = result["calm"], result["during"], result["slow"]
    counted = slow["transitions"]
    rate = f"{result['rate']:g}/s"
    ratio = during["p95_ms"] / calm["p95_ms"] if calm["p95_ms"] else math.nan
    rows_ = counted["rows"]
    statements = counted["statements"]
    window = f"{slow['window_s']:g} s"
    return [
        Row("slow_healthy", f"other tenant at {rate}, no slow webhook: p50 / p95 / p99",
            _three(calm)),
        Row("slow_healthy", f"the same beside 3,000 to a 1.5 s receiver ({window}): "
            "p50 / p95 / p99", _three(during)),
        Row("slow_healthy", "other tenant's publish request itself, before → beside: p95",
            f"{ms(calm['api_p95_ms'])} → {ms(during['api_p95_ms'])}"),
        Row("slow_healthy", "other tenant from its 202 answer to arrival, before → beside: p95",
            f"{ms(calm['answered_p95_ms'])} → {ms(during['answered_p95_ms'])}"),
        Row("slow_healthy", "other tenant's p95 against no slow webhook", f"{ratio:.2f} ×",
            "≤ 2 ×", ratio <= 2),
        Row("slow_healthy", f"slow webhook: deliveries arrived in {window}; most open at once",
            f"{slow['arrived']:,}; {slow['peak_concurrent']}"),
        Row("slow_healthy", "park + release statements per arrived delivery",
            f"{counted['statements_per_arrived']:.2f} (rows {counted['rows_per_arrived']:.2f}, "
            f"most of one {counted['most_of_one_arrived']})", "≤ 2",
            counted["statements_per_arrived"] <= 2 and counted["arrived"] > 0),
        Row("slow_healthy", f"in {window}: parks, releases (rows / statements)",
            f"{rows_.get('park', 0):,} / {statements.get('park', 0):,}, "
            f"{rows_.get('release', 0):,} / {statements.get('release', 0):,}"),
        Row("slow_healthy", "every park and release statement / deliveries arrived",
            f"{counted['all_statements_per_arrived']:.2f} (most parks of one delivery: "
            f"{counted['most_parks_of_one']})"),
        *_missing("slow_healthy", calm, "other tenant, no slow webhook"),
        *_missing("slow_healthy", during, "other tenant beside the slow webhook"),
    ]  # fmt: skip


def _locks(result: dict) -> list[Row]:
    if "calm" not in result:
        return []
    calm, during, after = result["calm"], result["during"], result["after"]
    recover, waits = result["disturbance"], result["lock_waits"]
    rate = f"{result['rate']:g}/s"
    p99 = during["api_p99_ms"]
    return [
        Row("locks", f"publish requests at {rate}, global failing, no recover: p50 / p95 / p99",
            _three(calm, "api_")),
        Row("locks", f"the same during the recover call ({during['accepted']} requests): "
            "p50 / p95 / p99", _three(during, "api_")),
        Row("locks", "publish p99 during the recover call", ms(p99, 0), "≤ 50 ms", p99 <= 50),
        Row("locks", "the same after the call, while its deliveries go: p50 / p95 / p99",
            _three(after, "api_")),
        Row("locks", f"recover of {result['failed_seeded']:,} failed: answer; redelivered; took",
            f"{recover['status']}; {recover['redelivered']:,}; {recover['call_s']} s"),
        Row("locks", f"recovered deliveries arrived {result['stack_stopped_s']:g} s after the call",
            f"{result['recovered_arrived']:,}"),
        Row("locks", "statements waiting for a lock: most at once; samples with one (every 0.1 s)",
            f"{waits['most_at_once']}; {waits['with_waits']} of {waits['samples']}"),
        Row("locks", "global rows before → after (status: count)",
            f"{_counts(recover['global_rows_before'])} → {_counts(result['global_rows_after'])}"),
    ]  # fmt: skip


def _counts(by_status: dict) -> str:
    return ", ".join(f"{status} {count}" for status, count in sorted(by_status.items())) or "none"


def _scale_out(result: dict) -> list[Row]:
    if "capped" not in result:
        return []
    capped, limited, conns = result["capped"], result["limited"], result["connections"]
    procs = f"{result['workers']} workers, {result['web_processes']} web"
    most_of_one = max(conns["peak_by_process"].values(), default=0)
    arrived = [capped["arrived"] == capped["events"], limited["arrived"] == limited["events"],
               result["spread"]["arrived"] == result["spread"]["events"]]  # fmt: skip
    return [
        Row("scale_out", f"(a) 1 s receiver, {capped['events']} events, {procs}: most at once",
            str(capped["peak_concurrent"]), f"≤ {capped['cap']}",
            (capped["peak_concurrent"] or 0) <= capped["cap"]),
        Row("scale_out", f"(b) rateLimit {limited['rate_limit']}, {limited['events']} events: "
            "most arrivals in 1 s", str(limited["most_in_a_second"]), "≤ 22",
            limited["most_in_a_second"] <= 22),
        Row("scale_out", "(b) rate from first to last arrival", f"{limited['rate']}/s"),
        Row("scale_out", "(c) peak PostgreSQL connections to the database (service's own)",
            f"{conns['peak']} ({conns['peak_service']})",
            f"≤ {conns['per_process']} × ({result['web_processes']} + {result['workers']}) + 1"
            f" = {conns['bound']}", conns["peak"] <= conns["bound"]),
        Row("scale_out", "(c) most connections of one process", str(most_of_one),
            f"≤ {conns['per_process']}", most_of_one <= conns["per_process"]),
        Row("scale_out", "events arrived: (a), (b), 3,000 to the fast receiver",
            f"{capped['arrived']}, {limited['arrived']}, {result['spread']['arrived']:,}",
            "all", all(arrived)),
    ]  # fmt: skip
