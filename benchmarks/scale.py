"""Many sessions in one process: the scale table of issue 18 and its plot, in one command.

    python benchmarks/scale.py [--sessions 50,250,500,1000] [--n 200]
                               [--contenders floor_queue,ds_callback,ds_shared]
                               [--reps 1] [--markdown out.md] [--json out.json]
                               [--png benchmarks/scale.png]

Starts ``server.py``, then runs the ``scale`` workload of ``contenders.py``
(every session receives one audio delta every ``--interval-us``, 50 ms = 20
events/s by default, phases spread evenly) for each contender at each number
of sessions, each run in a fresh process, sizes from small to large and the
contenders interleaved within a size. It prints one Markdown table (p50 and
p99 latency, CPU per event, threads, RSS per session, the ratios of
``ds_shared`` to ``ds_callback`` and of each to ``floor_queue``), the issue's
targets with this run's values, and the machine's load; ``--markdown``
writes the same text to a file, and ``--png`` draws p99 latency and CPU per
event against the number of sessions (matplotlib, from the ``bench`` extra;
without it the PNG is skipped with a note). The targets are reported, never
asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench

CONTENDERS = ["floor_queue", "ds_callback", "ds_shared"]
SESSIONS = [50, 250, 500, 1000]
#: Colours and markers of the plot, one per contender.
STYLE = {
    "floor_queue": ("tab:gray", "s"),
    "ds_callback": ("tab:blue", "o"),
    "ds_shared": ("tab:red", "^"),
}
#: The issue's goals (benchmark, not tests).
P99_GOAL_MS = 20.0
RSS_GOAL_KB = 64.0

Results = dict[int, dict[str, list[dict[str, Any]]]]


def raise_fd_limit() -> None:
    """Every session holds a socket (and the server one per session): lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if "error" not in r and r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def reader_us(run: dict[str, Any], sessions: int, n: int, key: str) -> float | None:
    """The reading threads' ``run_us`` (on CPU) or ``wait_us`` (runnable, waiting for a
    CPU) per event: the reactor's, or all session readers' together."""
    sched = run.get("sched") or {}
    for role in ("reactor", "reader", "_read"):
        if role in sched:
            return float(sched[role][key]) / (sessions * n)
    return None


def table(results: Results, contenders: list[str], n: int) -> list[str]:
    head = (
        "| sessions | contender | p50 ms | p99 ms | CPU us/event | CPU vs floor_queue | "
        "CPU vs ds_callback | p99 vs ds_callback | cores used | threads | RSS KB/session | "
        "reading thread us/event: on CPU / waiting for a CPU | load average (1 min) |"
    )
    lines = [head, _rule(head)]
    for sessions in sorted(results):
        row = results[sessions]
        cpu = {c: med(row.get(c, []), "cpu_us_per_event") for c in contenders}
        p99 = {c: med(row.get(c, []), "p99_us") for c in contenders}
        for c in contenders:
            runs = row.get(c, [])
            if not runs:
                continue
            errors = [r["error"] for r in runs if "error" in r]
            if len(errors) == len(runs):
                lines.append(f"| {sessions} | {c} | error: {errors[0][:80]} |" + " |" * 11)
                continue
            p50 = med(runs, "p50_us")
            rss = med(runs, "rss_per_session")
            reading = [x for r in runs if (x := reader_us(r, sessions, n, "run_us")) is not None]
            waiting = [x for r in runs if (x := reader_us(r, sessions, n, "wait_us")) is not None]
            loads = [r["load_before"] for r in runs if "load_before" in r]
            lines.append(
                f"| {sessions} | {c} | {fmt(None if p50 is None else p50 / 1e3, ',.2f')} | "
                f"{fmt(None if p99[c] is None else p99[c] / 1e3, ',.1f')} | "
                f"{fmt(cpu[c], '.1f')} | "
                f"{ratio(cpu[c], cpu.get('floor_queue'))} | "
                f"{ratio(cpu[c], cpu.get('ds_callback'))} | "
                f"{ratio(p99[c], p99.get('ds_callback'))} | "
                f"{fmt(med(runs, 'cpu_cores'), '.2f')} | {fmt(med(runs, 'threads'), '.0f')} | "
                f"{fmt(None if rss is None else rss / 1024, '.1f')} | "
                f"{fmt(statistics.median(reading) if reading else None, '.1f')} / "
                f"{fmt(statistics.median(waiting) if waiting else None, '.1f')} | "
                f"{', '.join(load.split()[0] for load in loads) or '-'} |"
            )
    return lines


def _rule(head: str) -> str:
    return "|" + "---|" * (head.count("|") - 1)


def targets(results: Results) -> list[str]:
    """The issue's goals, each with this run's values and whether it was met."""

    def value(sessions: int, contender: str, key: str) -> float | None:
        return med(results.get(sessions, {}).get(contender, []), key)

    def mark(ok: bool | None) -> str:
        return "not measured" if ok is None else "met" if ok else "NOT met"

    lines = ["| goal | this run | |", "|---|---|---|"]
    biggest = max(results, default=None)
    if biggest is not None:
        p99 = value(biggest, "ds_shared", "p99_us")
        ok = None if p99 is None or biggest < 1000 else p99 / 1e3 < P99_GOAL_MS
        lines.append(
            f"| 1000 sessions x 20 events/s, p99 < {P99_GOAL_MS:g} ms (ds_shared) | "
            f"{biggest} sessions: {fmt(None if p99 is None else p99 / 1e3, ',.1f')} ms | "
            f"{mark(ok)} |"
        )
    at = 500
    if at in results:
        shared = value(at, "ds_shared", "cpu_us_per_event")
        callback = value(at, "ds_callback", "cpu_us_per_event")
        floor = value(at, "floor_queue", "cpu_us_per_event")
        half = None if shared is None or callback is None else shared <= callback / 2
        below = None if shared is None or floor is None else shared < floor
        lines.append(
            f"| CPU/event at 500 sessions <= ds_callback / 2 | {fmt(shared, '.1f')} vs "
            f"{fmt(callback, '.1f')} us ({ratio(shared, callback)}) | "
            f"{mark(half)} |"
        )
        lines.append(
            f"| CPU/event at 500 sessions < floor_queue | {fmt(shared, '.1f')} vs "
            f"{fmt(floor, '.1f')} us ({ratio(shared, floor)}) | {mark(below)} |"
        )
    rss = [
        value(s, "ds_shared", "rss_per_session")
        for s in results
        if value(s, "ds_shared", "rss_per_session") is not None
    ]
    worst = max(rss, default=None)
    lines.append(
        f"| RSS per session <= {RSS_GOAL_KB:g} KB (ds_shared) | at most "
        f"{fmt(None if worst is None else worst / 1024, '.1f')} KB | "
        f"{mark(None if worst is None else worst / 1024 <= RSS_GOAL_KB)} |"
    )
    threads = {s: value(s, "ds_shared", "threads") for s in sorted(results)}
    seen = {t for t in threads.values() if t is not None}
    lines.append(
        "| threads independent of sessions (ds_shared) | "
        + ", ".join(f"{s}: {fmt(t, '.0f')}" for s, t in threads.items())
        + f" | {mark(None if not seen else len(seen) == 1)} |"
    )
    return lines


def plot(results: Results, contenders: list[str], path: Path, rate: float) -> str:
    """Draw the two panels into ``path``; what happened, for the report."""
    if importlib.util.find_spec("matplotlib") is None:
        return f"{path} not written: matplotlib is not installed (pip install -e '.[bench]')"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for c in contenders:
        colour, marker = STYLE.get(c, ("black", "x"))
        xs, p99s, cpus = [], [], []
        for sessions in sorted(results):
            runs = results[sessions].get(c, [])
            p99 = med(runs, "p99_us")
            cpu = med(runs, "cpu_us_per_event")
            if p99 is not None and cpu is not None:
                xs.append(sessions)
                p99s.append(p99 / 1e3)
                cpus.append(cpu)
        left.plot(xs, p99s, color=colour, marker=marker, label=c)
        right.plot(xs, cpus, color=colour, marker=marker, label=c)
    left.axhline(
        P99_GOAL_MS,
        color="tab:green",
        linestyle="--",
        linewidth=1,
        label=f"goal: {P99_GOAL_MS:g} ms",
    )
    left.set_yscale("log")
    left.set_ylabel("p99 latency, ms (log)")
    right.set_ylabel("CPU per event, us (all threads)")
    right.set_ylim(bottom=0)
    for ax, title in ((left, "p99 latency"), (right, "CPU per event")):
        ax.set_xscale("log")
        ax.set_xticks(sorted(results), [str(s) for s in sorted(results)])
        ax.minorticks_off()
        ax.set_xlabel(f"sessions in one process, {rate:g} events/s each")
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    fig.suptitle(f"dashscope_sync: many sessions, one process ({os.cpu_count()} cores)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written to {path}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default=",".join(map(str, SESSIONS)))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--n", type=int, default=200, help="audio deltas per session")
    parser.add_argument("--interval-us", type=int, default=50_000, help="between deltas")
    parser.add_argument("--warmup", type=int, default=5, help="samples dropped per session")
    parser.add_argument("--reps", type=int, default=1, help="runs of each cell (medians)")
    parser.add_argument("--markdown", help="write the table and targets to this file")
    parser.add_argument("--json", help="write every raw result to this file")
    parser.add_argument("--png", help="draw the plot into this file")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="every contender calls gc.freeze() once its sessions are up, as a server may",
    )
    parser.add_argument(
        "--from-json", help="measure nothing: write the table and plot of an earlier --json"
    )
    args = parser.parse_args()
    run = json.loads(Path(args.from_json).read_text()) if args.from_json else measure(args, parser)
    results: Results = {int(k): v for k, v in run["results"].items()}
    rate = 1e6 / run["interval_us"]
    lines = [
        f"Scale: each session receives one audio delta (4800 B of PCM) every "
        f"{run['interval_us'] / 1000:g} ms ({rate:g} events/s) x {run['n']}, phases spread over "
        f"the interval, handlers only; {run['reps']} run(s) per cell (medians), "
        f"{run['elapsed']:.0f} s in all"
        + ("; gc.freeze() once the sessions were up" if run.get("gc_freeze") else "")
        + ". Latency: server write to user code. CPU: user+system "
        "of every thread of the client process over the stream / events. RSS per session: "
        "slope of RSS against sessions while connecting. Reading thread: the reactor "
        "(ds_shared), or all session readers together (ds_callback, floor_queue); its wait "
        "for a CPU is the machine's load showing.",
        "",
        *table(results, run["contenders"], run["n"]),
        "",
        *targets(results),
        "",
        "Machine: "
        + "; ".join(f"{k} {v}" for k, v in run["machine"].items())
        + f"; load average at end {run['load_at_end']}; CPU pressure at end "
        + f"{run['pressure_at_end']}.",
    ]
    if run["problems"]:
        lines += ["", "Incomplete results:", *(f"- {p}" for p in run["problems"])]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.png:
        print(plot(results, run["contenders"], Path(args.png), rate))
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps(run, indent=1))
    return 1 if run["problems"] else 0


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Run every cell; the run as --json writes it."""
    sizes = [int(s) for s in args.sessions.split(",")]
    contenders = args.contenders.split(",")
    for c in contenders:
        if c not in bench.SCALE_CONTENDERS:
            parser.error(f"unknown scale contender {c!r} (of {','.join(bench.SCALE_CONTENDERS)})")
    raise_fd_limit()
    info = bench.machine()
    started = time.perf_counter()
    results: Results = {}
    problems: list[str] = []
    server = bench.Server()
    try:
        for sessions in sizes:
            workload = [
                *("--n", str(args.n), "--sessions", str(sessions)),
                *("--interval-us", str(args.interval_us), "--warmup", str(args.warmup)),
                *(["--gc-freeze"] if args.gc_freeze else []),
            ]
            for rep in range(1, args.reps + 1):
                for c in contenders:
                    before = load()
                    r = bench.run_contender(c, "scale", server.port, workload, args.timeout)
                    r["load_before"] = before
                    results.setdefault(sessions, {}).setdefault(c, []).append(r)
                    if "error" in r:
                        problems.append(f"{sessions} sessions, {c}, rep {rep}: {r['error']}")
                    elif r.get("n_audio") != sessions * args.n:
                        problems.append(
                            f"{sessions} sessions, {c}, rep {rep}: {r.get('n_audio')} of "
                            f"{sessions * args.n} audio deltas"
                        )
                    status = r.get("error") or (
                        f"p99 {r['p99_us'] / 1e3:,.1f} ms, {r['cpu_us_per_event']:.1f} us/event"
                    )
                    print(f"  {sessions:>5} sessions {c:<12} rep {rep}: {status}", flush=True)
    finally:
        server.close()
    return {
        "sizes": sizes,
        "contenders": contenders,
        "n": args.n,
        "interval_us": args.interval_us,
        "reps": args.reps,
        "gc_freeze": args.gc_freeze,
        "elapsed": time.perf_counter() - started,
        "machine": info,
        "load_at_end": load(),
        "pressure_at_end": bench.cpu_pressure(),
        "results": {str(k): v for k, v in results.items()},
        "problems": problems,
    }


if __name__ == "__main__":
    sys.exit(main())
