"""Static checks that gate every change: mypy strict, ruff and ruff format on the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("dashscope_sync", "tests", "examples", "benchmarks")

# tree_caches: one at a time among the workers (mypy and ruff keep caches in the tree).
pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("tree_caches")]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_mypy_strict() -> None:
    """The package type-checks under mypy --strict (config in pyproject.toml)."""
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_api_types() -> None:
    """What a type checker infers from the public API is pinned (tests/typing)."""
    proc = run("mypy", "--strict", "tests/typing")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff() -> None:
    """ruff finds nothing in the package, the tests, the examples or the benchmarks."""
    proc = run("ruff", "check", *CHECKED)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    """Every file is as ruff format writes it, so diffs show changes, not reflows."""
    proc = run("ruff", "format", "--check", *CHECKED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
