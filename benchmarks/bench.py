"""dashscope_sync's benchmark: the floors, dashscope_sync and the other SDKs, one interleaved run.

    python benchmarks/bench.py [--quick | --smoke] [--reps N] [--only burst,paced,...]
                               [--contenders a,b] [--markdown benchmarks/RESULTS.md]
                               [--json out.json] [--profile]

Starts ``server.py`` in its own process, then runs every (workload, contender)
pair in its own process (``contenders.py``), repetition by repetition:
rep 1: burst A B C..., paced A B C..., ...; rep 2: the same again. It prints
tables of medians and ratios to the floors, and the targets of the issue
with the values this run measured. The targets are reported, never asserted;
``--smoke`` instead checks that every contender received (or sent) every
event and byte, and exits 1 if one did not.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONTENDERS_PY = HERE / "contenders.py"
SERVER_PY = HERE / "server.py"

ALL_CONTENDERS = [
    "floor",
    "floor_queue",
    "ds_callback",
    "ds_iter",
    "ds_shared",
    "dashscope",
    "openai",
]
OURS = ["ds_callback", "ds_iter"]
#: Run only when named in --contenders: ds_callback with a recording running.
RECORDING = ["ds_record", "ds_record_lean"]
FLOORS = ["floor", "floor_queue"]
#: Contenders that need an optional package, and the module that must import.
NEEDS = {"dashscope": "dashscope", "openai": "openai"}
#: Scale runs callbacks (or one consumer for everything): ds_iter would need a
#: consumer thread per session, and the raw floor has no threads to share.
SCALE_CONTENDERS = ["floor_queue", "ds_callback", "ds_shared", "dashscope", "openai"]
WORKLOADS = ["burst", "paced", "upload", "rss", "import", "scale"]

IMPORTS = {
    "dashscope_sync": "import dashscope_sync",
    "dashscope": "from dashscope.audio.qwen_omni import OmniRealtimeConversation",
    "openai": "from openai import OpenAI",
    "floor": "import websocket, json, base64",
}
#: Which import a contender pays for.
IMPORT_OF = {
    "floor": "floor",
    "floor_queue": "floor",
    "ds_callback": "dashscope_sync",
    "ds_iter": "dashscope_sync",
    "ds_shared": "dashscope_sync",
    "ds_record": "dashscope_sync",
    "ds_record_lean": "dashscope_sync",
    "dashscope": "dashscope",
    "openai": "openai",
}

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "reps": 5,
        "burst_n": 5000,
        "paced_n": 500,
        "interval_us": 10_000,
        "warmup": 5,
        "upload_s": 60,
        "scale_sessions": 50,
        "scale_n": 300,
    },
    "quick": {
        "reps": 3,
        "burst_n": 2000,
        "paced_n": 200,
        "interval_us": 10_000,
        "warmup": 5,
        "upload_s": 60,
        "scale_sessions": 50,
        "scale_n": 100,
    },
    "smoke": {
        "reps": 1,
        "burst_n": 50,
        "paced_n": 20,
        "interval_us": 5_000,
        "warmup": 2,
        "upload_s": 2,
        "scale_sessions": 3,
        "scale_n": 10,
    },
}

#: The issue's reference run on this kind of machine (2 cores), for context only.
REFERENCE = {
    "floor": "52k ev/s, 19 us/ev",
    "floor_queue": "34k ev/s, 32 us/ev",
    "openai": "22k ev/s, 45 us/ev, paced p50 229 us",
    "dashscope": "2.6k ev/s, 386 us/ev, paced p50 830 us, import 0.42 s, 72 MB",
}

MB = 1024 * 1024


# Running ------------------------------------------------------------------------


class Server:
    """``server.py`` in its own process; it exits when our pipe to it closes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_PY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_contender(
    contender: str, workload: str, port: int, args: list[str], timeout: float = 600
) -> dict[str, Any]:
    cmd = [sys.executable, str(CONTENDERS_PY), contender, workload, "--port", str(port), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            if "error" in result:
                result["stderr"] = proc.stderr[-2000:]
            return result
    return {"error": f"no result (exit {proc.returncode})", "stderr": proc.stderr[-2000:]}


def _import_env() -> dict[str, str]:
    # Bytecode is cached as for any installed package: let the warm-up write it.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


IMPORT_CODE = (
    "import time, resource; t = time.perf_counter(); {stmt}; dt = time.perf_counter() - t; "
    "print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
)


def run_import(name: str) -> dict[str, Any]:
    code = IMPORT_CODE.format(stmt=IMPORTS[name])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_import_env(), cwd=HERE
    )
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    seconds, rss = proc.stdout.split()
    return {"import_s": float(seconds), "rss_peak": int(rss)}


def available(contender: str) -> bool:
    module = NEEDS.get(contender)
    return module is None or importlib.util.find_spec(module) is not None


# Checking ------------------------------------------------------------------------


def check(workload: str, result: dict[str, Any], sizes: dict[str, int]) -> list[str]:
    """What a result is missing: every event and byte must have arrived."""
    if "error" in result:
        return [result["error"]]
    problems = []

    def expect(key: str, want: int) -> None:
        if result.get(key) != want:
            problems.append(f"{key} = {result.get(key)}, expected {want}")

    if workload == "burst":
        n = sizes["burst_n"]
        expect("n_audio", n)
        expect("audio_bytes", n * 4800)
        expect("n_text", n)
        expect("text_chars", n * 3)
    elif workload == "paced":
        n = sizes["paced_n"]
        expect("n_audio", n)
        expect("audio_bytes", n * 4800)
        expect("samples", n - sizes["warmup"])
    elif workload == "scale":
        n = sizes["scale_n"] * sizes["scale_sessions"]
        expect("n_audio", n)
        expect("audio_bytes", n * 4800)
    elif workload == "upload":
        expect("server_bytes", result.get("sent_bytes", -1))
        expect("server_frames", result.get("sent_frames", -1))
        expect("sent_bytes", sizes["upload_s"] * 32000)
    if result.get("dropped_events"):
        problems.append(f"dropped_events = {result['dropped_events']}")
    return problems


# Summarising ---------------------------------------------------------------------


Results = dict[str, dict[str, list[dict[str, Any]]]]


def ok(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if "error" not in r]


def med(results: Results, workload: str, contender: str, key: str) -> float | None:
    values = [r[key] for r in ok(results.get(workload, {}).get(contender, [])) if key in r]
    return statistics.median(values) if values else None


def paired(
    results: Results,
    workload: str,
    contender: str,
    base: str,
    key: str,
    op: Callable[[float, float], float] = lambda a, b: a / b,
) -> float | None:
    """Median over repetitions of op(contender, base), each pair from the same repetition."""
    runs = results.get(workload, {})
    values = [
        op(a[key], b[key])
        for a, b in zip(runs.get(contender, []), runs.get(base, []), strict=False)
        if "error" not in a and "error" not in b and key in a and key in b
    ]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


class Table:
    def __init__(self, title: str, header: list[str], note: str = "") -> None:
        self.title = title
        self.header = header
        self.rows: list[list[str]] = []
        self.note = note

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def text(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))
        ]
        lines = [self.title]
        for row in [self.header, *self.rows]:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.header) - 1)) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(row) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


def build_tables(
    results: Results, contenders: list[str], sizes: dict[str, int], reps: int
) -> list[Table]:
    tables = []
    if results.get("burst"):
        n = sizes["burst_n"]
        t = Table(
            f"Burst: {n} audio deltas (4800 B PCM each) each followed by a transcript delta "
            f"({2 * n + 2} frames); medians of {reps}",
            [
                "contender",
                "events/s",
                "CPU us/event",
                "ev/s vs floor_queue",
                "CPU vs floor_queue",
                "ev/s vs floor",
                "CPU vs floor",
                "ctx switches/event",
                "threads",
                "peak RSS MB",
            ],
            "Ratios are medians of the per-repetition ratios (each pair from the same "
            "repetition). CPU is user+system of every thread of the client process.",
        )
        for c in contenders:
            if c not in results["burst"]:
                continue
            vcsw = med(results, "burst", c, "vcsw")
            ivcsw = med(results, "burst", c, "ivcsw")
            events = 2 * n + 2
            ctx = None if vcsw is None or ivcsw is None else (vcsw + ivcsw) / events
            t.add(
                c,
                fmt(med(results, "burst", c, "events_per_s")),
                fmt(med(results, "burst", c, "cpu_us_per_event"), ".1f"),
                ratio(paired(results, "burst", c, "floor_queue", "events_per_s")),
                ratio(paired(results, "burst", c, "floor_queue", "cpu_us_per_event")),
                ratio(paired(results, "burst", c, "floor", "events_per_s")),
                ratio(paired(results, "burst", c, "floor", "cpu_us_per_event")),
                fmt(ctx, ".2f"),
                fmt(med(results, "burst", c, "threads")),
                fmt(_mb(med(results, "burst", c, "rss_peak")), ".1f"),
            )
        tables.append(t)
    if results.get("paced"):
        t = Table(
            f"Paced: {sizes['paced_n']} audio deltas, one every "
            f"{sizes['interval_us'] / 1000:g} ms; "
            "one-way latency from the server's write to user code, us; medians of "
            f"{reps} (first {sizes['warmup']} samples of each run dropped)",
            ["contender", "p50", "p90", "p99", "max", "p50 - floor_queue p50", "CPU us/event"],
        )
        for c in contenders:
            if c not in results["paced"]:
                continue
            t.add(
                c,
                fmt(med(results, "paced", c, "p50_us")),
                fmt(med(results, "paced", c, "p90_us")),
                fmt(med(results, "paced", c, "p99_us")),
                fmt(med(results, "paced", c, "max_us")),
                fmt(
                    paired(results, "paced", c, "floor_queue", "p50_us", lambda a, b: a - b), "+.0f"
                ),
                fmt(med(results, "paced", c, "cpu_us_per_event"), ".1f"),
            )
        tables.append(t)
    if results.get("upload"):
        s = sizes["upload_s"]
        t = Table(
            f"Upload: {s} s of 16 kHz PCM16 as {s * 10} appends of 3200 B, as fast as possible; "
            f"medians of {reps}",
            ["contender", "CPU ms per audio second", "vs floor", "wall s"],
        )
        for c in contenders:
            if c not in results["upload"]:
                continue
            t.add(
                c,
                fmt(med(results, "upload", c, "cpu_ms_per_audio_s"), ".3f"),
                ratio(paired(results, "upload", c, "floor", "cpu_ms_per_audio_s")),
                fmt(med(results, "upload", c, "wall"), ".3f"),
            )
        tables.append(t)
    if results.get("rss") or results.get("import"):
        t = Table(
            f"Start-up and memory; medians of {reps}",
            [
                "contender",
                "cold import s",
                "import vs dashscope",
                "RSS after import MB",
                "RSS connected MB",
                "threads connected",
                "connect s",
            ],
            "Cold import: a new interpreter timing its own import statement (bytecode "
            "cached, file cache warm): " + "; ".join(f"{k}: `{v}`" for k, v in IMPORTS.items()),
        )
        for c in contenders:
            mod = IMPORT_OF[c]
            t.add(
                c,
                fmt(med(results, "import", mod, "import_s"), ".3f"),
                ratio(paired(results, "import", mod, "dashscope", "import_s")),
                fmt(_mb(med(results, "import", mod, "rss_peak")), ".1f"),
                fmt(_mb(med(results, "rss", c, "rss_connected")), ".1f"),
                fmt(med(results, "rss", c, "threads")),
                fmt(med(results, "rss", c, "connect_s"), ".3f"),
            )
        tables.append(t)
    if results.get("scale"):
        t = Table(
            f"Scale: {sizes['scale_sessions']} sessions in one process, each receiving one audio "
            f"delta every {sizes['interval_us'] / 1000:g} ms x {sizes['scale_n']} "
            f"(phases spread over the interval); medians of {reps}",
            [
                "contender",
                "p50 us",
                "p99 us",
                "max us",
                "CPU cores used",
                "CPU us/event",
                "threads",
                "threads/session",
                "first session MB",
                "MB/session after",
                "RSS fit r",
                "RSS 0 / all connected MB",
            ],
            "threads/session = (threads mid-stream - threads before connecting) / sessions. "
            "First session MB: RSS added by the first connect (imports and other one-time costs "
            "included); MB/session after: least-squares slope of RSS after each further "
            "connect, with its correlation r (near 1: linear).",
        )
        for c in results["scale"]:
            t.add(
                c,
                fmt(med(results, "scale", c, "p50_us")),
                fmt(med(results, "scale", c, "p99_us")),
                fmt(med(results, "scale", c, "max_us")),
                fmt(med(results, "scale", c, "cpu_cores"), ".2f"),
                fmt(med(results, "scale", c, "cpu_us_per_event"), ".1f"),
                fmt(med(results, "scale", c, "threads")),
                fmt(med(results, "scale", c, "threads_per_session"), ".2f"),
                fmt(_mb(med(results, "scale", c, "rss_first_session")), ".2f"),
                fmt(_mb(med(results, "scale", c, "rss_per_session")), ".3f"),
                fmt(med(results, "scale", c, "rss_fit_r"), ".3f"),
                fmt(_mb(med(results, "scale", c, "rss_base")), ".1f")
                + " / "
                + fmt(_mb(med(results, "scale", c, "rss_connected")), ".1f"),
            )
        tables.append(t)
    return tables


def sched_table(results: Results, contenders: list[str], sizes: dict[str, int]) -> Table:
    """Each kind of thread's share of an event: CPU, run-queue wait, wake-ups."""
    t = Table(
        "Threads: per event, each kind of thread's time on CPU, time waiting for a CPU, and "
        "wake-ups (times scheduled in), from /proc/self/task/*/schedstat; medians",
        ["workload", "contender", "thread", "CPU us/event", "CPU wait us/event", "wake-ups/event"],
        "A thread that sleeps between events pays a wake-up (and, on 2 cores, often more: "
        "waiting for the GIL is another sleep); in scale, 'reader' and 'handlers' sum over "
        "all sessions' threads.",
    )
    events = {
        "burst": 2 * sizes["burst_n"] + 2,
        "paced": sizes["paced_n"],
        "scale": sizes["scale_n"] * sizes["scale_sessions"],
    }
    for w, n in events.items():
        for c in contenders if w != "scale" else SCALE_CONTENDERS:
            runs = ok(results.get(w, {}).get(c, []))
            roles = sorted({role for r in runs for role in r.get("sched", {})})
            for role in roles:
                cells = []
                for key in ("run_us", "wait_us", "wakeups"):
                    values = [r["sched"][role][key] / n for r in runs if role in r.get("sched", {})]
                    cells.append(statistics.median(values) if values else None)
                if (cells[0] or 0) < 0.05 and (cells[2] or 0) < 0.01:
                    continue  # idle the whole time
                t.add(w, c, role, fmt(cells[0], ".1f"), fmt(cells[1], ".1f"), fmt(cells[2], ".2f"))
    return t


def _mb(value: float | None) -> float | None:
    return None if value is None else value / MB


def targets(results: Results, sizes: dict[str, int]) -> Table:
    """The issue's targets against this run's medians (reported, not asserted)."""
    t = Table(
        "Targets (ratios within this run)",
        ["target", "contender", "measured", "limit", "met"],
    )

    def row(name: str, who: str, value: float | None, limit: str, met: bool | None, spec: str):
        t.add(name, who, fmt(value, spec), limit, "-" if met is None else ("yes" if met else "NO"))

    for c in OURS:
        v = paired(results, "burst", c, "floor_queue", "events_per_s")
        row(
            "burst events/s vs floor_queue",
            c,
            v,
            ">= 0.85",
            None if v is None else v >= 0.85,
            ".2f",
        )
        v = paired(results, "burst", c, "floor_queue", "cpu_us_per_event")
        row(
            "burst CPU/event vs floor_queue",
            c,
            v,
            "<= 1.25",
            None if v is None else v <= 1.25,
            ".2f",
        )
    for c in OURS:
        v = paired(results, "paced", c, "floor_queue", "p50_us", lambda a, b: a - b)
        row(
            "paced p50 - floor_queue p50, us", c, v, "<= 50", None if v is None else v <= 50, "+.0f"
        )
        v = med(results, "paced", c, "p99_us")
        row("paced p99, us", c, v, "< 1000", None if v is None else v < 1000, ".0f")
    for c in OURS:
        v = paired(results, "upload", c, "floor", "cpu_ms_per_audio_s")
        row("upload CPU/audio s vs floor", c, v, "<= 1.2", None if v is None else v <= 1.2, ".2f")
    v = med(results, "import", "dashscope_sync", "import_s")
    row(
        "import dashscope_sync, ms",
        "-",
        None if v is None else v * 1e3,
        "<= 100",
        None if v is None else v <= 0.1,
        ".0f",
    )
    v = paired(results, "import", "dashscope_sync", "dashscope", "import_s")
    row("import vs official dashscope", "-", v, "<= 0.25", None if v is None else v <= 0.25, ".2f")
    for c in OURS:
        v = _mb(med(results, "rss", c, "rss_connected"))
        row("connected session RSS, MB", c, v, "< 35", None if v is None else v < 35, ".1f")
    c = "ds_callback"
    v = med(results, "scale", c, "p99_us")
    row(
        f"scale ({sizes['scale_sessions']} sessions) p99, us",
        c,
        v,
        "< 5000",
        None if v is None else v < 5000,
        ".0f",
    )
    v = med(results, "scale", c, "threads_per_session")
    row("scale threads/session", c, v, "<= 2", None if v is None else v <= 2, ".2f")
    v = _mb(med(results, "scale", c, "rss_per_session"))
    row("scale MB/session (documented)", c, v, "linear", None, ".3f")
    v = med(results, "scale", c, "rss_fit_r")
    row("scale RSS linearity r", c, v, "~1", None if v is None else v > 0.99, ".3f")
    return t


# Machine ------------------------------------------------------------------------


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor() or "?"
    info["cores"] = str(os.cpu_count())
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    for dist in (
        "dashscope-sync",
        "websocket-client",
        "dashscope",
        "openai",
        "websockets",
        "pybase64",
    ):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "dashscope_sync"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        info["dashscope_sync source"] = f"git {head}" + (" + uncommitted changes" if dirty else "")
    except OSError:
        pass
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["CPU pressure at start"] = cpu_pressure()
    return info


def cpu_pressure() -> str:
    """Linux PSI: the share of time some task waited for a CPU (other work on the machine)."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return " ".join(some[1:4]) + " (%)"
    except (OSError, IndexError):
        return "unknown"


# Profiling ------------------------------------------------------------------------


#: Stacks outside the measured window: imports, connecting, closing.
_OUTSIDE = ("Contender.load", ".connect (contenders.py", ".close (contenders.py")
#: Every stack kept runs the burst: the workload itself, or a session thread.
_INSIDE = ("run_burst", "_read_loop", "_dispatch_loop")


def profile(port: int, n: int, rate: int = 1000) -> str:
    """py-spy (sampling, every thread, idle time excluded) on a burst of each of ours.

    Only samples inside the burst are kept; each function's samples become
    microseconds per event: samples / rate / events.
    """
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return "(install py-spy, in the bench extra, for --profile)"
    events = 2 * n + 2
    parts = [
        f"py-spy at {rate} Hz on a burst of {n} audio + {n} transcript deltas ({events} events) "
        "per contender; us/event = samples in that function / rate / events (a sample is "
        "taken of every thread that is running, so the columns approximate CPU). "
        "'self' is time in the function's own code and the C functions it calls; "
        "'incl.' adds everything it calls."
    ]
    for c in OURS:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "stacks.txt"
            cmd = [str(spy), "record", "-r", str(rate), "-f", "raw", "-o", str(raw), "--threads"]
            cmd += ["--nonblocking"]  # never pause the process: less distortion
            cmd += ["--", sys.executable, str(CONTENDERS_PY), c, "burst", "--port", str(port)]
            cmd += ["--n", str(n)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if not raw.exists():
                parts.append(f"{c}: py-spy failed: {proc.stderr[-1000:]}")
                continue
            measured = ""
            for line in proc.stdout.splitlines():
                if line.startswith("RESULT "):
                    r = json.loads(line[7:])
                    if "cpu_us_per_event" in r:
                        measured = (
                            f"; measured CPU under py-spy: {r['cpu_us_per_event']:.1f} us/event"
                        )
            parts.append(summarise_stacks(c, raw.read_text(), rate, events, measured))
    proc = subprocess.run(
        [sys.executable, str(HERE / "breakdown.py")], capture_output=True, text=True, cwd=ROOT
    )
    if proc.returncode != 0:
        # Not quietly: a stage that no longer runs is a broken benchmark.
        raise SystemExit(f"breakdown.py failed:\n{proc.stdout}\n{proc.stderr}")
    parts.append(proc.stdout + proc.stderr)
    return "\n\n".join(parts)


def summarise_stacks(
    contender: str, raw: str, rate: int, events: int, note: str = "", top: int = 25
) -> str:
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or any(marker in stack for marker in _OUTSIDE):
            continue
        if not any(marker in stack for marker in _INSIDE):
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], [f for f in frames[1:] if not f.startswith(" (")]
        if not frames:
            continue
        total += count
        # Name threads by what they run, not by id.
        role = (
            "reader"
            if "_read_loop" in stack
            else "handlers"
            if "_dispatch_loop" in stack
            else "main"
            if "<module>" in frames[0]
            else thread
        )
        threads[role] = threads.get(role, 0) + count
        leaf = _func(frames[-1])
        own[leaf] = own.get(leaf, 0) + count
        for name in {_func(f) for f in frames}:
            incl[name] = incl.get(name, 0) + count

    def us(samples: int) -> float:
        return samples / rate / events * 1e6

    lines = [
        f"{contender}: {total} samples in the burst = {us(total):.1f} us/event "
        + "("
        + ", ".join(f"{k} {us(v):.1f}" for k, v in sorted(threads.items()))
        + ")"
        + note,
        f"  {'self us/ev':>10} {'share':>6}  function",
    ]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {us(count):10.2f} {count / total:6.1%}  {name}")
    lines.append(f"  {'incl. us/ev':>10} {'share':>6}  function")
    for name, count in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {us(count):10.2f} {count / total:6.1%}  {name}")
    return "\n".join(lines)


def _func(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


# Main ------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, 3 repetitions")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 1 repetition, floors and dashscope_sync only; "
        "checks completeness and exits 1 on a missing event",
    )
    parser.add_argument("--reps", type=int, help="repetitions (default 5; quick 3; smoke 1)")
    parser.add_argument("--only", help=f"comma-separated workloads of {','.join(WORKLOADS)}")
    parser.add_argument("--contenders", help=f"comma-separated, of {','.join(ALL_CONTENDERS)}")
    parser.add_argument("--markdown", help="write the results as markdown to this file")
    parser.add_argument("--json", help="write every raw result to this file")
    parser.add_argument(
        "--profile", action="store_true", help="also profile dashscope_sync's burst (py-spy)"
    )
    args = parser.parse_args()

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = dict(SIZES[mode])
    reps = args.reps or sizes["reps"]
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}")
    if args.contenders:
        wanted = args.contenders.split(",")
        for c in wanted:
            if c not in ALL_CONTENDERS + RECORDING:
                parser.error(f"unknown contender {c!r}")
    else:
        wanted = FLOORS + OURS if args.smoke else list(ALL_CONTENDERS)
    contenders = [c for c in wanted if available(c)]
    skipped = [c for c in wanted if c not in contenders]
    scale_contenders = [c for c in SCALE_CONTENDERS if c in contenders]
    # The official SDK's import is the yardstick of ours, so it is timed whenever installed.
    wanted_imports = {IMPORT_OF[c] for c in contenders}
    if not args.smoke and available("dashscope"):
        wanted_imports.add("dashscope")
    imports = [name for name in IMPORTS if name in wanted_imports]

    info = machine()
    print(f"dashscope_sync benchmark ({mode}, {reps} repetitions)")
    for k, v in info.items():
        print(f"  {k}: {v}")
    if skipped:
        print(f"  skipped (not installed): {', '.join(skipped)}")
    print(flush=True)

    common = ["--interval-us", str(sizes["interval_us"]), "--warmup", str(sizes["warmup"])]
    workload_args = {
        "burst": ["--n", str(sizes["burst_n"])],
        "paced": ["--n", str(sizes["paced_n"]), *common],
        "upload": ["--seconds", str(sizes["upload_s"])],
        "rss": [],
        "scale": [
            "--n",
            str(sizes["scale_n"]),
            "--sessions",
            str(sizes["scale_sessions"]),
            *common,
        ],
    }
    results: Results = {}
    problems: list[str] = []
    started = time.perf_counter()
    server = Server()
    profile_text = ""
    try:
        if mode != "smoke":
            # One discarded pass: disk cache, bytecode, the server's burst cache.
            for name in imports:
                run_import(name)
            for c in contenders:
                run_contender(c, "burst", server.port, ["--n", str(min(200, sizes["burst_n"]))])
        else:
            for name in imports:
                run_import(name)
        for rep in range(1, reps + 1):
            for w in workloads:
                if w == "import":
                    for name in imports:
                        results.setdefault("import", {}).setdefault(name, []).append(
                            run_import(name)
                        )
                    continue
                who = scale_contenders if w == "scale" else contenders
                for c in who:
                    r = run_contender(c, w, server.port, workload_args[w])
                    results.setdefault(w, {}).setdefault(c, []).append(r)
                    for p in check(w, r, sizes):
                        problems.append(f"rep {rep} {w} {c}: {p}")
                    status = "ERROR " + r["error"] if "error" in r else "ok"
                    print(f"  rep {rep}/{reps} {w:<6} {c:<12} {status}", flush=True)
        if args.profile:
            profile_text = profile(server.port, max(20_000, sizes["burst_n"]))
    finally:
        server.close()
    elapsed = time.perf_counter() - started

    tables = build_tables(results, contenders, sizes, reps)
    if any(results.get(w) for w in ("burst", "paced", "scale")):
        tables.append(sched_table(results, contenders, sizes))
    target_table = targets(results, sizes)
    print()
    for t in tables:
        print(t.text(), end="\n\n")
    if mode != "smoke":
        print(target_table.text(), end="\n\n")
    if problems:
        print("INCOMPLETE RESULTS:")
        for p in problems:
            print("  " + p)
    print(
        f"finished in {elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f}, "
        f"CPU pressure now {cpu_pressure()}"
    )
    if profile_text:
        print("\nProfile of dashscope_sync's burst\n" + profile_text)

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "mode": mode,
                    "reps": reps,
                    "sizes": sizes,
                    "machine": info,
                    "contenders": contenders,
                    "skipped": skipped,
                    "results": results,
                    "problems": problems,
                },
                indent=1,
            )
        )
    if args.markdown:
        write_markdown(
            Path(args.markdown),
            mode,
            reps,
            info,
            tables,
            target_table,
            problems,
            skipped,
            elapsed,
            profile_text,
            sys.argv[1:],
        )
    return 1 if problems else 0


def write_markdown(
    path: Path,
    mode: str,
    reps: int,
    info: dict[str, str],
    tables: list[Table],
    target_table: Table,
    problems: list[str],
    skipped: list[str],
    elapsed: float,
    profile_text: str,
    argv: list[str],
) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/bench.py " + " ".join(argv) + "` "
        f"({mode} sizes, {reps} interleaved repetitions, {elapsed:.0f} s); see "
        "[README.md](README.md) for the method. Re-run to replace this file.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append(f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    lines.append(f"- CPU pressure at end: {cpu_pressure()}")
    if skipped:
        lines.append(f"- skipped (not installed): {', '.join(skipped)}")
    lines += ["", "## Results", ""]
    for t in tables:
        lines += [t.markdown(), ""]
    lines += ["## Targets", "", target_table.markdown(), ""]
    lines += [
        "The issue's reference run on a 2-core machine (medians), for comparison: "
        + "; ".join(f"{k}: {v}" for k, v in REFERENCE.items())
        + ".",
        "",
    ]
    lines += [
        "## Notes",
        "",
        "- openai runs through `client.beta.realtime.connect(...)` (with "
        "`websocket_base_url` at the local server): the beta interface, whose event names "
        "(`response.audio.delta`...) are DashScope's; it works unmodified against this server.",
        "- The official dashscope SDK validates UTF-8 in pure Python (websocket-client's "
        "default), which is most of its cost per event; in scale it cannot keep up with "
        "5000 events/s, so its latencies there are queueing delay, in seconds.",
        "- The raw floor reads frames with websocket-client (three `recv` calls per frame); "
        "dashscope_sync parses frames from its own buffer, which is why it can beat the floors.",
        "",
    ]
    if problems:
        lines += ["## Incomplete results", ""] + [f"- {p}" for p in problems] + [""]
    if profile_text:
        lines += ["## Profile of dashscope_sync's burst", "", "```", profile_text, "```", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
