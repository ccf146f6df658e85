"""The load test's report: per-second series in, report.json + report.md + PNG plots out.

The inputs are plain values collected during the run (fleet seconds, probe seconds,
spectator seconds, CPU samples); everything here is a pure function of them except
``write_report``, which writes the files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SATURATED_CPU = 90.0  # percent of one core, smoothed over 3 s
LATENCY_SOURCES = (("spectator_ms", "fix sent -> seen on a spectator socket"),
                   ("updates_ms", "fix sent -> runner-updates.v1 card (processors)"),
                   ("pings_ms", "fix sent -> pings.v1 record (ingest + broker)"))


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """n, p50, p95, p99 and max of ``values`` (None when there are none)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"n": int(a.size), "p50": round(float(p50), 1), "p95": round(float(p95), 1),
            "p99": round(float(p99), 1), "max": round(float(a.max()), 1)}


def merge_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sum per-process per-second rows into one row per second, in time order.

    Counters add up, lists concatenate, dicts of counts add key by key; ``lag`` (a
    snapshot, not a count) keeps the latest value.
    """
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        if "second" not in row:
            continue
        acc = out.setdefault(row["second"], {"second": row["second"]})
        for k, v in row.items():
            if k == "second":
                continue
            if k == "lag":
                acc[k] = v
            elif isinstance(v, list):
                acc.setdefault(k, []).extend(v)
            elif isinstance(v, dict):
                acc.setdefault(k, Counter()).update(v)
            else:
                acc[k] = acc.get(k, 0) + v
    return [out[s] for s in sorted(out)]


def latency_source(probe: list[dict[str, Any]]) -> tuple[str, str]:
    """The furthest-downstream latency measured: spectator, then processors, then ingest."""
    for key, label in LATENCY_SOURCES:
        if any(row.get(key) for row in probe):
            return key, label
    return "pings_ms", LATENCY_SOURCES[-1][1]


def cpu_by_process(samples: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """(t, cpu %) series per process name, in time order."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s["t"]):
        out[s["name"]].append((s["t"], s["cpu"]))
    return dict(out)


def saturated_first(samples: list[dict[str, Any]], probe: list[dict[str, Any]],
                    cores: int | None = None) -> dict[str, Any]:
    """Which process under test saturated first, and the evidence.

    A process saturates when its CPU, averaged over 3 s, reaches SATURATED_CPU percent
    of a core; the earliest wins. Without one, a consumer group whose lag grew through
    the run is named; then the machine itself when its ``cores`` were all busy (other
    processes included); otherwise the busiest process, marked as not saturated.
    """
    under_test = [s for s in samples if s.get("role") == "under test"]
    first: tuple[float, str, float] | None = None
    peak: dict[str, float] = {}
    mean: dict[str, float] = {}
    for name, series in cpu_by_process(under_test).items():
        cpu = np.asarray([c for _, c in series], dtype=float)
        smooth = np.convolve(cpu, np.ones(3) / 3, mode="valid") if cpu.size >= 3 else cpu
        peak[name] = round(float(smooth.max()), 1) if smooth.size else 0.0
        mean[name] = round(float(cpu.mean()), 1) if cpu.size else 0.0
        hits = np.nonzero(smooth >= SATURATED_CPU)[0]
        if hits.size and (first is None or series[hits[0]][0] < first[0]):
            first = (series[hits[0]][0], name, peak[name])
    if first is not None:
        return {"process": first[1], "saturated": True, "t": first[0],
                "why": f"{first[1]} reached {first[2]:.0f}% of a core (3 s mean) first",
                "peak_cpu": peak, "mean_cpu": mean}
    lags = [row.get("lag") or {} for row in probe]
    if len(lags) >= 6:
        head, tail = lags[: len(lags) // 3], lags[-len(lags) // 3:]
        for group in sorted({g for lag in tail for g in lag}):
            before = max((lag.get(group, 0) for lag in head), default=0)
            after = min((lag.get(group, 0) for lag in tail), default=0)
            if after > max(100, 2 * before):
                return {"process": f"consumer group {group}", "saturated": True,
                        "why": f"its lag grew from {before} to at least {after} records",
                        "peak_cpu": peak, "mean_cpu": mean}
    machine = [x["cpu"] for x in samples if x.get("role") == "machine"]
    if machine and cores and float(np.mean(machine)) >= SATURATED_CPU * cores:
        m = machine_share(samples)
        return {"process": "the machine's CPU", "saturated": True,
                "why": f"all {cores} cores were busy ({m['total']}% of a core in use, "
                f"{m['others']}% by other processes) while no single process reached a core",
                "peak_cpu": peak, "mean_cpu": mean}
    busiest = max(mean, key=lambda k: mean[k], default=None)
    return {"process": busiest, "saturated": False,
            "why": "no process reached saturation; the busiest is named",
            "peak_cpu": peak, "mean_cpu": mean}


def machine_share(samples: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean CPU (% of one core) of the whole machine, of this run's processes, and of
    everything else running beside them, with the mean 1-minute load average."""
    machine = [s for s in samples if s.get("role") == "machine"]
    if not machine:
        return {"total": None, "ours": None, "others": None, "load1": None}
    secs = len(machine)
    total = sum(s["cpu"] for s in machine) / secs
    ours = sum(s["cpu"] for s in samples if s.get("role") in ("under test", "load")) / secs
    return {"total": round(total, 1), "ours": round(ours, 1),
            "others": round(max(0.0, total - ours), 1),
            "load1": round(sum(s.get("load1", 0.0) for s in machine) / secs, 2)}


def lag_max(probe: list[dict[str, Any]]) -> dict[str, int]:
    """The largest lag (records behind) each consumer group had during the run."""
    out: dict[str, int] = {}
    for row in probe:
        for group, lag in (row.get("lag") or {}).items():
            out[group] = max(out.get(group, 0), int(lag))
    return out


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """The report's figures from the run's collected values (see ``write_report``)."""
    fleet, probe = merge_seconds(run["fleet"]), merge_seconds(run["probe"])
    key, label = latency_source(probe)
    secs = max(1, len(fleet))
    errors: Counter[str] = Counter()
    for row in fleet:
        errors.update(row.get("errors", {}))
    fixes = sum(r.get("fixes", 0) for r in fleet)
    accepted = sum(r.get("accepted", 0) for r in fleet)
    series = [{"second": r["second"], **{k: percentiles(r.get(k, []))
                                         for k, _ in LATENCY_SOURCES}} for r in probe]
    return {
        "config": run["config"],
        "latency_source": key, "latency_label": label,
        "end_to_end": percentiles([v for r in probe for v in r.get(key, [])]),
        "latencies": {k: percentiles([v for r in probe for v in r.get(k, [])])
                      for k, _ in LATENCY_SOURCES},
        "request_ms": percentiles([v for r in fleet for v in r.get("latency_ms", [])]),
        "fixes_sent": fixes, "fixes_accepted": accepted,
        "fixes_per_s": round(accepted / secs, 1),
        "requests_per_s": round(sum(r.get("requests", 0) for r in fleet) / secs, 1),
        "errors": dict(errors), "behind": sum(r.get("behind", 0) for r in fleet),
        "spectators": run.get("spectators", {}),
        "saturation": saturated_first(run["samples"], probe, run["config"].get("cpus")),
        "cpu_mean": {n: round(float(np.mean([c for _, c in s])), 1)
                     for n, s in cpu_by_process(run["samples"]).items()},
        "rss_max_mb": {n: max(s["rss_mb"] for s in run["samples"] if s["name"] == n)
                       for n in {s["name"] for s in run["samples"]}},
        "machine": machine_share(run["samples"]),
        "lag_max": lag_max(probe),
        "profile": run.get("profile"), "notes": run.get("notes", []),
        "series": {"latency": series,
                   "throughput": [{"second": r["second"], "fixes": r.get("accepted", 0),
                                   "requests": r.get("requests", 0),
                                   "errors": sum(r.get("errors", {}).values())}
                                  for r in fleet]},
    }


def write_report(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Write report.json, report.md and the plots into ``out``; return the summary.

    ``run`` holds ``config`` (the command's settings), ``fleet`` and ``probe`` (lists of
    per-second rows), ``samples`` (the Sampler's), and optionally ``spectators``,
    ``profile`` and ``notes``.
    """
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(run)
    summary["plots"] = _plots(out, run, summary)
    (out / "report.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    (out / "report.md").write_text(render_markdown(summary), encoding="utf-8")
    return summary


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def render_markdown(s: dict[str, Any]) -> str:
    """The human report of a summary."""
    c, e2e, sat = s["config"], s["end_to_end"], s["saturation"]
    lines = [f"# Load test: {c.get('runners')} runners every {c.get('interval')} s, "
             f"{c.get('spectators', 0)} spectators, {c.get('duration')} s", "",
             f"Command: `{c.get('command', '')}`", "",
             f"End-to-end latency ({s['latency_label']}): p50 {_fmt(e2e['p50'])} ms, "
             f"p95 {_fmt(e2e['p95'])} ms, p99 {_fmt(e2e['p99'])} ms, "
             f"max {_fmt(e2e['max'])} ms over {e2e['n']} fixes.", "",
             "| latency | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for key, label in LATENCY_SOURCES:
        p = s["latencies"][key]
        lines.append(f"| {label} | {p['n']} | {_fmt(p['p50'])} | {_fmt(p['p95'])} | "
                     f"{_fmt(p['p99'])} | {_fmt(p['max'])} |")
    r = s["request_ms"]
    lines += ["", f"Ingest: {s['fixes_per_s']} fixes/s accepted, {s['requests_per_s']} "
              f"requests/s; request round trip p50 {_fmt(r['p50'])} ms, p99 {_fmt(r['p99'])} ms; "
              f"{s['fixes_accepted']} of {s['fixes_sent']} fixes accepted; errors "
              f"{s['errors'] or 'none'}; not sent (generator behind): {s['behind']}.", ""]
    if s["spectators"]:
        lines += [spectator_line(s["spectators"]), ""]
    lines += ["| process | mean CPU % of a core | peak CPU % (3 s) | max RSS MB |",
              "|---|---|---|---|"]
    for name in sorted(s["cpu_mean"]):
        peak = sat["peak_cpu"].get(name)
        lines.append(f"| {name} | {s['cpu_mean'][name]} | {_fmt(peak)} | "
                     f"{s['rss_max_mb'][name]} |")
    if s.get("lag_max"):
        lines += ["", "Consumer lag, most records behind during the run: " + ", ".join(
            f"{g} {n}" for g, n in sorted(s["lag_max"].items())) + "."]
    m = s.get("machine") or {}
    if m.get("total") is not None:
        lines += ["", f"Machine ({c.get('cpus')} cores): {m['total']}% of a core in use on "
                  f"average, {m['ours']}% by this run's processes, **{m['others']}% by other "
                  f"processes** beside them; 1-minute load average {m['load1']}."]
    lines += ["", f"Saturated first: **{sat['process']}** "
              f"({'saturated' if sat['saturated'] else 'not saturated'}): {sat['why']}.", ""]
    prof = s.get("profile")
    if prof:
        lines += [f"Profile of {prof.get('process')}: {prof.get('message', '')}", ""]
        for row in prof.get("top", [])[:12]:
            lines.append(f"- {row['share']:.1f}% {row['frame']}")
        lines.append("")
    if s["notes"]:
        lines += ["Notes:", *[f"- {n}" for n in s["notes"]], ""]
    lines += [f"![{name}]({name})" for name in s.get("plots", [])]
    return "\n".join(lines) + "\n"


def spectator_line(sp: dict[str, Any]) -> str:
    """One sentence on the spectator swarm's summary (``SwarmResult.to_dict``)."""
    if "error" in sp:
        return f"Spectators: the swarm failed: {sp['error']}."
    tick = sp.get("tick_latency_ms") or {}

    def ms(v: Any) -> str:
        return "-" if v is None or v != v else f"{v:.0f}"  # v != v: NaN, nothing measured

    return (f"Spectators: {sp.get('open_at_end')} of {sp.get('clients')} connected at the end "
            f"({sp.get('processes')} swarm processes); {sp.get('frames_per_s', 0):.0f} frames/s, "
            f"{sp.get('bytes_per_s', 0) / 1e6:.2f} MB/s fanned out; broadcast tick to client "
            f"p50 {ms(tick.get('p50'))} ms, p99 {ms(tick.get('p99'))} ms; connect failures "
            f"{sp.get('connect_failures') or 'none'}, disconnects "
            f"{sp.get('disconnects') or 'none'}, "
            f"error frames {sp.get('error_frames', 0)}, worker failures "
            f"{sp.get('worker_failures') or 'none'}.")


def _plots(out: Path, run: dict[str, Any], s: dict[str, Any]) -> list[str]:
    """Latency over time, latency CDF, throughput and CPU per process, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = s["latency_source"]
    lat = s["series"]["latency"]
    t0 = min([row["second"] for row in lat] + [r["second"] for r in s["series"]["throughput"]]
             + [int(x["t"]) for x in run["samples"]], default=0)
    names = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(8, 4))
    for q in ("p50", "p95", "p99"):
        pts = [(row["second"] - t0, row[key][q]) for row in lat if row[key][q] is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=q)
    ax.set(xlabel="s", ylabel="ms", title=f"Latency over time: {s['latency_label']}")
    ax.legend()
    save(fig, "latency-over-time.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    probe = merge_seconds(run["probe"])
    for k, label in LATENCY_SOURCES:  # all stages: the gaps show where latency is added
        values = np.sort([max(v, 0.1) for r in probe for v in r.get(k, [])])
        if values.size:
            ax.plot(values, np.arange(1, values.size + 1) / values.size, label=label)
            ax.set_xscale("log")
    ax.set(xlabel="ms", ylabel="fraction of fixes", title="Latency CDF, fix sent -> ...")
    ax.legend(fontsize="small")
    save(fig, "latency-cdf.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    tp = s["series"]["throughput"]
    for k in ("fixes", "requests", "errors"):
        ax.plot([r["second"] - t0 for r in tp], [r[k] for r in tp], label=f"{k}/s")
    ax.set(xlabel="s", ylabel="per second", title="Ingest throughput")
    ax.legend()
    save(fig, "throughput.png")

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, series in sorted(cpu_by_process(run["samples"]).items()):
        ax.plot([t - t0 for t, _ in series], [c for _, c in series], label=name)
    ax.set(xlabel="s", ylabel="% of one core", title="CPU per process")
    ax.legend(fontsize="small", ncol=2)
    save(fig, "cpu.png")
    return names
