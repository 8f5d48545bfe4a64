"""benchmarks/speech.py at tiny sizes: it runs and reports both workloads (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import need

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_speech_benchmark_runs(tmp_path: Path) -> None:
    """The speak() benchmark completes a tiny run and prints its targets."""
    need("websocket")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speech.py"), "--reps", "1", "--pieces", "50",
         "--paced", "20", "--json", str(tmp_path / "speech.json")],
        capture_output=True, text=True, cwd=ROOT, timeout=110, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "piece latency" in proc.stdout and "speak() / encoding" in proc.stdout
    assert (tmp_path / "speech.json").exists()
