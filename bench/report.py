"""The figures against the targets of issue 5: one table on stdout, everything in a JSON file."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values (math.inf stands for never arrived)."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


@dataclass
class Row:
    scenario: str
    figure: str
    measured: str
    target: str = ""
    met: bool | None = None  # None: a figure without a target

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: ""}[self.met]


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def ms(value, waited: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return f"> {waited:g} s (never arrived)"
    return f"{value:,.1f} ms"


def rows(results: dict, peak_rss_mb: dict | None = None) -> list[Row]:
    out: list[Row] = []
    for name, result in results.items():
        if "error" in result:
            out.append(
                Row(name, "did not complete", result["error"].splitlines()[0][:80], "", False)
            )
    ceiling = results.get("ceiling", {})
    base = results.get("baseline", {})
    if "plain_rps" in ceiling:
        c = ceiling
        out += [
            Row("ceiling", f"plain loop, {c['processes']} process(es)", rate(c["plain_rps"])),
            Row("ceiling", "the service's Sender.post in a loop", rate(c["sender_rps"])),
            Row(
                "receiver", "capacity (2 pipelining raw-socket clients)", rate(c["flood_rps"]),
                f"≥ 3 × ceiling ({rate(3 * c['plain_rps'])})", c["flood_rps"] >= 3 * c["plain_rps"],
            ),
        ]  # fmt: skip
    if "rate" in base:
        note = ""
        if not base["complete"]:
            note = f" (stopped after {base['received']:,} in {base['seconds']:.0f} s)"
        figure = f"naive Celery drain, prefork -c{base['concurrency']}, no database"
        out.append(Row("baseline", figure, rate(base["rate"]) + note))
        if base.get("worker_cpu_ms_per_delivery"):
            cost = f"{base['worker_cpu_ms_per_delivery']:.1f} ms"
            out.append(Row("baseline", "worker CPU per delivery", cost))
    floor = results.get("floor", {})
    if "rate" in floor:
        workers = "1 worker" if floor["workers"] == 1 else f"{floor['workers']} workers"
        figure = f"Celery alone: no-op tasks/s, {workers} × {floor['concurrency']} threads"
        note = "" if floor["complete"] else f" (stopped after {floor['done']:,})"
        out.append(Row("floor", figure, rate(floor["rate"]) + note))
        if floor.get("worker_cpu_ms_per_task"):
            cost = f"{floor['worker_cpu_ms_per_task']:.1f} ms"
            out.append(Row("floor", "worker CPU per task", cost))
    paced = results.get("floor_paced", {})
    if paced.get("worker_cpu_ms_per_task"):
        figure = f"worker CPU per no-op task sent at {paced['rate']:g}/s"
        out.append(Row("floor_paced", figure, f"{paced['worker_cpu_ms_per_task']:.2f} ms"))
    out += _drain_rows(results.get("drain", {}), ceiling, base)
    ingest = results.get("ingest", {})
    if "rate" in ingest:
        figure = f"accepted events/s, {ingest['connections']} connections"
        out += [
            Row("ingest", figure, rate(ingest["rate"]), "≥ 500/s", ingest["rate"] >= 500),
            Row("ingest", "p95 request latency", ms(ingest["p95_ms"])),
        ]
        answered = ingest["accepted"] + ingest.get("warmup_accepted", 0)
        stored = f"{ingest['events_stored']:,} / {answered:,}"
        kept = ingest["events_stored"] == answered
        out.append(Row("ingest", "events stored / 202 answers", stored, "equal", kept))
    out += _latency_rows("latency", results.get("latency", {}), ((95, 50), (99, 150)))
    out += _latency_rows("latency_high", results.get("latency_high", {}), ((95, None), (99, None)))
    out += _cost_rows(results, peak_rss_mb or {})
    out += _latency_rows("isolation", results.get("isolation", {}), ((95, 100), (99, None)))
    out += _health_rows(results)
    purged = results.get("purge", {})
    if "rows_per_s" in purged:
        quiet, during = purged["publish_without_purge"], purged["publish_during_purge"]
        out += [
            Row(
                "purge", f"{purged['purged_events']:,} old events (3 rows each)",
                f"{purged['rows_per_s']:,} rows/s", "≥ 3 × 200 events/s (600 rows/s)",
                purged["rows_per_s"] >= 600,
            ),
            Row("purge", f"publish p95 at {purged['publish_rate']:.0f}/s, without purge",
                f"{quiet['p95_ms']} ms"),
            Row("purge", f"publish p95 at {purged['publish_rate']:.0f}/s, during purge",
                f"{during['p95_ms']} ms"),
        ]  # fmt: skip
    out += _producer_rows(results.get("batch", {}), results.get("ordered", {}))
    out += _burst_rows(results.get("burst", {}), base, results.get("floor", {}))
    out += _server_rows(results.get("web_servers", {}), results.get("floor", {}))
    out += _size_rows(results.get("size", {}), results.get("ingest", {}))
    from bench import report_tenants  # it builds on Row and ms above

    out += report_tenants.rows(results)
    return out


def _cost_rows(results: dict, peak_rss_mb: dict) -> list[Row]:
    """Costs against Celery's floor measured in the same run (issue 13), and peak memory."""
    floor = results.get("floor", {})
    per_task = floor.get("worker_cpu_ms_per_task")
    out = []

    def against_floor(scenario, figure, cost, limit):
        if not cost:
            return
        if per_task:
            ratio = cost / per_task
            measured = f"{cost:.2f} ms = {ratio:.1f} × floor"
            out.append(Row(scenario, figure, measured, f"≤ {limit} × floor", ratio <= limit))
        else:
            out.append(Row(scenario, figure, f"{cost:.2f} ms"))

    drain, ingest = results.get("drain", {}), results.get("ingest", {})
    against_floor("drain", "worker CPU per delivery", drain.get("worker_cpu_ms_per_delivery"), 2)
    against_floor("ingest", "web CPU per accepted event", ingest.get("web_cpu_ms_per_event"), 2)
    if drain.get("rate") and floor.get("rate"):
        share = drain["rate"] / floor["rate"]
        out.append(Row("drain", "rate against the floor's", f"{share:.2f} ×", "≥ 0.5 ×",
                       share >= 0.5 and drain["complete"]))  # fmt: skip
    for name in ("latency", "latency_high"):
        cost = results.get(name, {}).get("service_cpu_ms_per_delivered")
        if not cost:
            continue
        figure = f"service CPU per delivered event at {results[name]['rate']:g}/s"
        against_floor(name, figure, cost["total"], 5)
        parts = " · ".join(f"{part} {cost[part]:.2f}" for part in cost if part not in (
            "total", "delivered"))  # fmt: skip
        out.append(Row(name, "  by process, ms per delivered event", parts))
    if peak_rss_mb:
        peaks = " · ".join(f"{role} {mb:.0f}" for role, mb in sorted(peak_rss_mb.items()))
        largest = max(peak_rss_mb.values())
        out.append(Row("all", "peak RSS of each service process, MB", peaks, "≤ 150 MB",
                       largest <= 150))  # fmt: skip
    return out


def _drain_rows(drain: dict, ceiling: dict, base: dict) -> list[Row]:
    if "rate" not in drain:
        return []
    value = drain["rate"]
    note = ""
    if not drain["complete"]:
        note = f" (stopped after {drain['delivered']:,} in {drain['seconds']:.0f} s)"
    workers = "1 worker" if drain["workers"] == 1 else f"{drain['workers']} workers"
    figure = f"deliveries/s, {drain['events']:,} events, {workers} × {drain['concurrency']} threads"
    out = [
        Row("drain", figure, rate(value) + note, "≥ 1,000/s", value >= 1000 and drain["complete"])
    ]
    if ceiling.get("plain_rps"):
        share = value / ceiling["plain_rps"]
        out.append(Row("drain", "share of the ceiling", f"{share:.2f} ×", "≥ 0.6 ×", share >= 0.6))
    if base.get("rate"):
        ratio = value / base["rate"]
        out.append(Row("drain", "against the baseline", f"{ratio:.2f} ×", "≥ 1 ×", ratio >= 1))
    recorded = f"{drain['attempts_recorded']:,} / {drain['receiver_requests']:,}"
    every = drain["attempts_recorded"] == drain["receiver_requests"] >= drain["delivered"]
    figure = "attempt rows / requests the receiver got"
    out.append(Row("drain", figure, recorded, "equal", every))
    peak = drain["peak_process_rss_mb"]
    out.append(
        Row("drain", "peak RSS of a worker process", f"{peak:.0f} MB", "≤ 150 MB", peak <= 150)
    )
    return out


def _health_rows(results: dict) -> list[Row]:
    """Isolation with hanging webhooks against the same load with none; the outage."""
    alone = results.get("isolation_alone", {})
    out = _latency_rows("isolation_alone", alone, ((95, None), (99, None)))
    for name in ("isolation_same_host", "isolation_many_hosts"):
        result = results.get(name, {})
        out += _latency_rows(name, result, ((95, None), (99, None)))
        if "p95_ms" in result and alone.get("p95_ms"):
            ratio = result["p95_ms"] / alone["p95_ms"]
            met = ratio <= 2 and result["watched"] == result["delivered"]
            out.append(Row(name, "healthy p95 against no hanging webhook", f"{ratio:.2f} ×",
                           "≤ 2 ×, all delivered", met))  # fmt: skip
    down = results.get("outage", {})
    if "missed_while_down" in down:
        start, peak = down["memory_kb"]["start"], down["memory_kb"]["peak"]
        arrived = f"{down['arrived_after']:,} / {down['missed_while_down']:,}"
        out += [
            Row("outage", f"published while refusing for {down['outage_s']:g} s, arrived after",
                arrived, "all", down["arrived_after"] == down["missed_while_down"]),
            Row("outage", "duplicates; most attempts of one delivery",
                f"{down['duplicates']}; {down['max_attempts']}", "0; ≤ 3",
                down["duplicates"] == 0 and down["max_attempts"] <= 3),
            Row("outage", "release after it came back", f"{down['release_s']} s"),
            Row("outage", "worker RSS, start → peak",
                f"{start['worker_rss_kb'] // 1024} → {peak['worker_rss_kb'] // 1024} MB"),
            Row("outage", "Redis memory, start → peak",
                f"{start['redis_used_memory_kb'] // 1024} → "
                f"{peak['redis_used_memory_kb'] // 1024} MB"),
            Row("outage", "healthy receiver beside it, p95", ms(down["beside_p95_ms"], 0)),
        ]  # fmt: skip
        if alone.get("p95_ms") and math.isfinite(down["beside_p95_ms"]):
            ratio = down["beside_p95_ms"] / alone["p95_ms"]
            out.append(Row("outage", "healthy p95 against no fault", f"{ratio:.2f} ×", "≤ 2 ×",
                           ratio <= 2))  # fmt: skip
    return out


def _latency_rows(name: str, result: dict, targets) -> list[Row]:
    if "p95_ms" not in result:
        return []
    waited = result["waited_s"]
    who = "healthy half, " if name.startswith("isolation") else ""
    offered = f"{result['rate']:g} events/s"
    if result["achieved_rate"] < 0.95 * result["rate"]:
        offered += f" (API took {result['achieved_rate']:g}/s)"
    head = f"{who}{offered}: publish → receiver"
    out = [Row(name, f"{head} p50", ms(result["p50_ms"], waited))]
    for p, limit in targets:
        value = result[f"p{p}_ms"]
        target = f"≤ {limit} ms" if limit else ""
        met = (value <= limit) if limit else None
        out.append(Row(name, f"{head} p{p}", ms(value, waited), target, met))
    missing = result["watched"] - result["delivered"]
    if missing:
        out.append(Row(name, "events not delivered in the window", f"{missing:,}", "0", False))
    return out


def table(all_rows: list[Row]) -> str:
    header = ("scenario", "figure", "measured", "target", "result")
    cells = [header] + [(r.scenario, r.figure, r.measured, r.target, r.verdict) for r in all_rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: Path, payload: dict, all_rows: list[Row]) -> None:
    data = {**payload, "checks": [asdict(r) | {"verdict": r.verdict} for r in all_rows]}
    path.write_text(json.dumps(_finite(data), indent=2, default=str) + "\n")


def _finite(value):
    """Strict JSON: an infinite latency (never arrived) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def busy_note(results: dict, cpus: int) -> str | None:
    """How much of the machine other processes took while the backlogs drained.

    "Other" is everything but the workers, PostgreSQL, Redis and the receiver: other users of
    the machine, and the bench's own poller (a small share).
    """
    shares = []
    for name in ("baseline", "drain"):
        cpu = results.get(name, {}).get("cpu_seconds") or {}
        if cpu.get("wall"):
            shares.append(f"{name} {100 * cpu['other'] / (cpu['wall'] * cpus):.0f} %")
    if not shares:
        return None
    joined = ", ".join(shares)
    return f"Machine CPU used by other processes while draining: {joined} (a quiet machine: ~0 %)"


def _producer_rows(batch: dict, ordered: dict) -> list[Row]:
    out = []
    if "ratio" in batch:
        out += [
            Row("batch", "accepted events/s, one event per request", rate(batch["single_rate"])),
            Row(
                "batch", f"accepted events/s, {batch['batch_size']} events per request",
                rate(batch["batch_rate"]), "≥ 5 × single", batch["ratio"] >= 5,
            ),
            Row("batch", "batch / single", f"{batch['ratio']:.2f} ×"),
        ]  # fmt: skip
    if "ratio" in ordered:
        none, record = ordered["none"], ordered["record"]
        load = f"{ordered['records']:,} records × {ordered['events_per_record']}"
        out += [
            Row("ordered", f"deliveries/s, unordered webhook, {load}", rate(none["rate"])),
            Row(
                "ordered", f"deliveries/s, ordered webhook, {load}", rate(record["rate"]),
                "≥ 0.8 × unordered", ordered["ratio"] >= 0.8,
            ),
            Row(
                "ordered", "inversions at the receiver, ordered webhook",
                str(record["inversions"]), "0", record["inversions"] == 0,
            ),
            Row("ordered", "inversions at the receiver, unordered webhook",
                str(none["inversions"])),
        ]  # fmt: skip
        for label, figures in (("unordered", none), ("ordered", record)):
            if "parks" in figures:
                out.append(Row(
                    "ordered", f"{label}: parks at the cap; releases (rows / statements)",
                    f"{figures['parks']:,}; {figures['releases']:,} /"
                    f" {figures['release_statements']:,}",
                ))  # fmt: skip
    return out


def _three_ms(result: dict, prefix: str = "") -> str:
    """p50 / p95 / p99 in milliseconds."""
    values = [result.get(f"{prefix}p{p}_ms") for p in (50, 95, 99)]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return "n/a"
    return " / ".join(f"{v:,.1f}" for v in values) + " ms"


def _burst_rows(burst: dict, base: dict, floor: dict) -> list[Row]:
    """A burst of single events with the API and the workers on the same cores."""
    if "delivery_rate" not in burst:
        return []
    events = f"{burst['events']:,} single events, {burst['connections']} connections"
    arrived = burst["arrived"]
    note = "" if burst["complete"] else f" ({arrived:,} of {burst['accepted']:,} arrived)"
    out = [
        Row("burst", f"{events}: accepted events/s, first request → last 202",
            rate(burst["publish_rate"])),
        Row("burst", "  publish request p50 / p95 / p99", _three_ms(burst, "api_")),
        Row("burst", "deliveries/s at the receiver, first → last arrival",
            rate(burst["delivery_rate"]) + note),
        Row("burst", "deliveries/s, first request → last arrival",
            f"{rate(burst['end_to_end_rate'])} ({burst['end_to_end_s']:g} s)"),
    ]  # fmt: skip
    if base.get("rate"):
        ratio = burst["delivery_rate"] / base["rate"]
        out += [
            Row("burst", "naive Celery baseline, same run", rate(base["rate"])),
            Row("burst", "burst delivery (first → last arrival) / baseline", f"{ratio:.2f} ×",
                "≥ 1 ×", ratio >= 1 and burst["complete"]),
        ]  # fmt: skip
    else:
        out.append(Row("burst", "burst delivery / baseline", "baseline not run", "≥ 1 ×"))
    refused = burst["requests"] - burst["accepted"]
    if refused or not burst["complete"] or burst["duplicates"]:
        out.append(Row("burst", "non-202 answers; not delivered; duplicates",
                       f"{refused:,}; {burst['accepted'] - arrived:,}; {burst['duplicates']:,}",
                       "0; 0; 0", False))  # fmt: skip
    cost = burst.get("service_cpu_ms_per_delivered")
    if cost:
        per_task = floor.get("worker_cpu_ms_per_task")
        total = f"{cost['total']:.2f} ms"
        if per_task:
            total += f" = {cost['total'] / per_task:.1f} × floor"
        parts = " · ".join(f"{part} {cost[part]:.2f}" for part in cost if part not in (
            "total", "delivered"))  # fmt: skip
        out += [
            Row("burst", "service CPU per delivered event", total),
            Row("burst", "  by process, ms per delivered event", parts),
        ]
    return out


SERVER_LABELS = {"gunicorn": "gunicorn gthread", "granian": "granian wsgi"}


def _server_rows(result: dict, floor: dict) -> list[Row]:
    """The API under each HTTP server, each figure beside gunicorn's."""
    servers = result.get("servers")
    if not servers:
        return []
    per_task = floor.get("worker_cpu_ms_per_task")
    low, high = (f"{r:g}" for r in result["rates"])
    reference = servers.get("gunicorn", {})
    out = []

    def versus(value, key_path) -> str:
        """' · N × gunicorn' for a figure of a server other than gunicorn."""
        base = reference
        for key in key_path:
            base = base.get(key, {}) if isinstance(base, dict) else {}
        if not value or not isinstance(base, int | float) or not base or reference is server:
            return ""
        return f" · {value / base:.2f} × gunicorn"

    for name, server in servers.items():
        label = SERVER_LABELS.get(name, name)
        if "error" in server:
            out.append(Row("web_servers", f"{label}: did not complete",
                           server["error"].splitlines()[0][:80], "", False))  # fmt: skip
            continue
        label += f" {server['processes']} × {server['threads']}"
        closed = server["closed"]
        out.append(Row(
            "web_servers", f"{label}: accepted events/s, {closed['connections']} connections",
            rate(closed["achieved_rate"]) + versus(closed["achieved_rate"],
                                                   ("closed", "achieved_rate")),
        ))  # fmt: skip
        latency = _three_ms(closed) + versus(closed["p95_ms"], ("closed", "p95_ms"))
        out.append(Row("web_servers", f"{label}: closed loop, request p50 / p95 / p99", latency))
        for phase_key, figure in (("closed", "closed loop"), (f"rate_{low}", f"at {low}/s"),
                                  (f"rate_{high}", f"at {high}/s")):  # fmt: skip
            cost = server[phase_key]["web_cpu_ms_per_event"]
            if not cost:
                continue
            shown = f"{cost:.2f} ms"
            row = Row("web_servers", f"{label}: web CPU per accepted event, {figure}", shown)
            if per_task:
                ratio = cost / per_task
                row.measured += f" = {ratio:.1f} × floor"
                row.target, row.met = "≤ 2.5 × floor", ratio <= 2.5
            row.measured += versus(cost, (phase_key, "web_cpu_ms_per_event"))
            out.append(row)
        for rate_key, limit in ((low, None), (high, 100.0)):
            phase = server[f"rate_{rate_key}"]
            offered = float(rate_key)
            took, late = phase["achieved_rate"], phase["late_sends"]
            # Sent late, a request's latency leaves out the time it waited for a client thread:
            # a rate the clients could only keep by falling behind was not sustained.
            sustained = (
                took >= 0.95 * offered
                and late <= 0.01 * phase["requests"]
                and not phase["unsent"]
                and not phase["errors"]
            )
            figure = f"{label}: {rate_key} events/s offered, request p50 / p95 / p99"
            measured = _three_ms(phase) + versus(phase["p95_ms"], (f"rate_{rate_key}", "p95_ms"))
            if late:
                measured += f"; {late:,} of {phase['requests']:,} sent late"
            if took < 0.95 * offered or phase["unsent"]:
                measured += f" (took {took:g}/s, {phase['unsent']} unsent)"
            if limit is None:
                out.append(Row("web_servers", figure, measured))
            else:
                met = sustained and phase["p95_ms"] <= limit
                out.append(Row("web_servers", figure, measured,
                               f"sustained, p95 ≤ {limit:g} ms", met))  # fmt: skip
        answers: dict[str, int] = {}
        for phase_key in ("closed", f"rate_{low}", f"rate_{high}"):
            for status, count in server[phase_key]["answers"].items():
                answers[status] = answers.get(status, 0) + count
        shown = ", ".join(f"{status}: {count:,}" for status, count in sorted(answers.items()))
        stored = f"{server['events_stored']:,} / {server['answered_202']:,}"
        out += [
            Row("web_servers", f"{label}: answers by status (measured windows)", shown,
                "all 202", set(answers) == {"202"}),
            Row("web_servers", f"{label}: events stored / 202 answers", stored, "equal",
                server["events_stored"] == server["answered_202"]),
            Row("web_servers", f"{label}: peak RSS of one process",
                f"{server['peak_process_rss_mb']:.0f} MB"),
        ]  # fmt: skip
    return out


def _size_rows(size: dict, ingest: dict) -> list[Row]:
    """Each figure on the loaded history against the same on small tables (≤ 1.5 ×)."""
    if not size.get("loaded"):
        return []
    empty, loaded, ratios = size["empty"], size["loaded"], size["ratios"]
    history = f"{size['history_rows']:,} deliveries"
    out = [Row("size", f"history of {history}: loaded in", f"{size['load']['seconds']['total_s']} s"
               f" ({size['load']['database_mb']:,} MB)")]  # fmt: skip
    figures = (
        ("publish p95 at 100 events/s", "publish_p95_ms", " ms"),
        ("drain, deliveries/s", "drain_rate", "/s"),
        ("one sweep (median of 3)", "sweep_ms", " ms"),
    )
    for label, key, unit in figures:
        ratio = ratios.get(key)
        out.append(
            Row("size", f"{label}: small → loaded", f"{empty[key]}{unit} → {loaded[key]}{unit}"
                f" ({ratio} ×)", "≤ 1.5 ×", ratio is not None and ratio <= 1.5)
        )  # fmt: skip
    for page, timing in loaded["pages"].items():
        ratio = ratios.get(f"page {page}")
        out.append(
            Row("size", f"{page}, p95: small → loaded",
                f"{empty['pages'][page]['p95_ms']} → {timing['p95_ms']} ms ({ratio} ×)",
                "≤ 1.5 ×", ratio is not None and ratio <= 1.5)
        )  # fmt: skip
    purge = loaded.get("purge")
    if purge:
        # The ingest it must follow: the API's closed-loop rate in the same run.
        follow = ingest.get("rate")
        measured = f"{purge['events_per_s']:,.0f} events/s ({purge['deliveries_per_s']:,.0f}"
        measured += " deliveries/s)"
        if follow:
            ratio = purge["events_per_s"] / follow
            measured += f", {ratio:.1f} × ingest ({follow:,.0f} events/s)"
            out.append(Row("size", "purge of the oldest day", measured, "≥ 10 × ingest",
                           ratio >= 10))  # fmt: skip
        else:
            out.append(Row("size", "purge of the oldest day (no ingest in this run)", measured))
    return out
