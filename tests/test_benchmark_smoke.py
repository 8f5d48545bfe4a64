"""The benchmark's smoke run: tiny sizes, correctness only, so benchmarks/ cannot rot.

No timing is asserted here: the benchmark itself reports its targets.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import extra_required, need

# Single mode (issue 18): the benchmark runs in a child process and picks its
# contenders itself (ds_shared is its shared-mode contender); no test reactor
# reaches it.

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
WORKLOADS = ("burst", "paced", "upload", "rss", "scale")


def run_smoke(tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(out), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["problems"] == []
    return data


@pytest.mark.timeout(120)
def test_smoke_floors_and_dashscope_sync(tmp_path: Path) -> None:
    """Both floors and both dashscope_sync styles receive and send every event and byte."""
    data = run_smoke(tmp_path)
    results = data["results"]
    for contender in ("floor", "floor_queue", "ds_callback", "ds_iter"):
        burst = results["burst"][contender][0]
        assert (burst["n_audio"], burst["n_text"]) == (50, 50)
        assert burst["audio_bytes"] == 50 * 4800
        paced = results["paced"][contender][0]
        assert paced["n_audio"] == 20 and paced["samples"] == 18
        assert paced["p50_us"] > 0
        upload = results["upload"][contender][0]
        assert upload["server_bytes"] == upload["sent_bytes"] == 2 * 32000
        assert results["rss"][contender][0]["rss_connected"] > 0
    for contender in ("floor_queue", "ds_callback"):
        scale = results["scale"][contender][0]
        assert scale["n_audio"] == 3 * 10
        assert scale["threads_per_session"] > 0
    assert results["import"]["dashscope_sync"][0]["import_s"] > 0


OPTIONAL = [name for name in ("dashscope", "openai") if importlib.util.find_spec(name)]


@pytest.mark.timeout(120)
def test_smoke_other_sdks(tmp_path: Path) -> None:
    """The official dashscope SDK and openai's client, where installed, get every event too."""
    if "dashscope" not in OPTIONAL and (not OPTIONAL or extra_required()):
        # The [test] extra installs the official SDK: CI fails without it.
        need("dashscope", reason="neither dashscope nor openai is installed")
    data = run_smoke(tmp_path, "--contenders", ",".join(OPTIONAL), "--only", "burst,paced,upload")
    for contender in OPTIONAL:
        assert data["results"]["burst"][contender][0]["n_audio"] == 50
        assert data["results"]["upload"][contender][0]["server_bytes"] == 2 * 32000


def test_import_cold_script_runs() -> None:
    """benchmarks/import_cold.py runs and prints the warm column (the cache is left alone)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "import_cold.py"), "--runs", "1", "--warm-only"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("import statement") for line in lines)
    assert "cold: not measured (--warm-only)" in lines


def test_docs_state_cold_and_warm_import() -> None:
    """The performance page gives the cold-start import time next to the warm one."""
    page = (ROOT / "docs" / "performance.md").read_text()
    performance = page.split("# Performance", 1)[1].split("\n## ", 1)[0]
    text = " ".join(performance.split())
    assert "benchmarks/import_cold.py" in text and "drop_caches" in text
    assert re.search(r"file cache warm", text) and re.search(r"\d+-\d+ ms cold", text)


@pytest.mark.timeout(120)
def test_breakdown_runs_every_stage() -> None:
    """breakdown.py times every stage against the current private modules, or exits 1."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "breakdown.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "FAILED" not in proc.stdout
    assert "Mailbox.deliver" in proc.stdout


@pytest.mark.timeout(120)
def test_transcription_benchmark_smoke() -> None:
    """benchmarks/transcription.py --smoke: every interim reaches both readers, with a latency."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "transcription.py"), "--smoke"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads(proc.stdout.splitlines()[-1])
    assert data["problems"] == []
    for reader in ("floor", "transcripts"):
        (run,) = data["runs"][reader]
        assert run["n"] == 20 and run["p50_us"] > 0


@pytest.mark.timeout(120)
def test_framing_benchmark_runs() -> None:
    """benchmarks/framing.py --quick parses and encodes every case with both implementations."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "framing.py"), "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stdout.count("parse ") == 2 and proc.stdout.count("encode ") == 2


@pytest.mark.timeout(120)
def test_scale_script_writes_table_and_plot(tmp_path: Path) -> None:
    """benchmarks/scale.py at tiny sizes runs every contender at every size and writes its files;
    --from-json redraws the same table from them."""
    out = {name: tmp_path / name for name in ("scale.md", "scale.json", "scale.png")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            *("--sessions", "2,3", "--n", "10", "--interval-us", "5000", "--warmup", "2"),
            *("--markdown", str(out["scale.md"]), "--json", str(out["scale.json"])),
            *("--png", str(out["scale.png"])),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    data = json.loads(out["scale.json"].read_text())
    assert data["problems"] == []
    contenders = ("floor_queue", "ds_callback", "ds_shared")
    for sessions in (2, 3):
        for contender in contenders:
            (run,) = data["results"][str(sessions)][contender]
            assert run["n_audio"] == sessions * 10 and run["p99_us"] > 0
    table = out["scale.md"].read_text()
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \| \w+ \|", line)]
    assert [tuple(row.split(" | ")[:2]) for row in rows] == [
        (f"| {s}", c) for s in (2, 3) for c in contenders
    ]
    assert re.search(
        r"\| threads independent of sessions \(ds_shared\) \| 2: (\d+), 3: \1 \| met \|", table
    )
    again = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "scale.py"),
            *("--from-json", str(out["scale.json"]), "--markdown", str(tmp_path / "again.md")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert (tmp_path / "again.md").read_text() == table  # redrawn, not measured again
    if importlib.util.find_spec("matplotlib") is None:
        # matplotlib comes with the [bench] extra, not [test]: the script says so.
        assert "not written: matplotlib is not installed" in proc.stdout
        assert not out["scale.png"].exists()
    else:
        assert out["scale.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
