"""The suite's own rules: where the [test] extra must be complete, a missing package fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REQUIRE_EXTRA_ENV, THREADS_ONLY, _threads_only

ROOT = Path(__file__).resolve().parent.parent

USES_EXTRA = """
from tests.conftest import need


def test_uses_the_extra() -> None:
    need("dashscope_sync_no_such_package")
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("env", "outcome"),
    [({}, "1 skipped"), ({"CI": "true"}, "1 failed"), ({REQUIRE_EXTRA_ENV: "1"}, "1 failed")],
    ids=["local", "CI=true", f"{REQUIRE_EXTRA_ENV}=1"],
)
def test_a_missing_extra_package_skips_only_where_allowed(
    tmp_path: Path, env: dict[str, str], outcome: str
) -> None:
    """need() skips a test whose [test] extra package is missing, but fails it in CI."""
    (tmp_path / "test_uses_extra.py").write_text(USES_EXTRA)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", REQUIRE_EXTRA_ENV)}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_uses_extra.py"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert outcome in proc.stdout, proc.stdout + proc.stderr
    if outcome == "1 failed":
        assert proc.returncode == 1
        assert "the [test] extra must be complete" in proc.stdout
    else:
        assert proc.returncode == 0


def test_no_test_imports_an_extra_package_with_importorskip() -> None:
    """Test files import the [test] extra's packages through need(), never importorskip,
    which would turn a broken install into silent skips in CI."""
    call = "pytest." + "importorskip("  # split, so this file does not name it
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "conftest.py" and call in path.read_text("utf-8")
    ]
    assert offenders == []


# Shared mode (issue 18) ---------------------------------------------------------------

MODES_CONFTEST = """
from tests.conftest import (
    _io_mode, no_thread_leaks, pytest_configure, pytest_generate_tests, shared_mode,
)
"""

MODES = """
import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

KEPT = []


@pytest.fixture(scope="module")
def lasting():
    with LocalRealtimeServer() as server:
        yield server
        for session in KEPT:
            session.close()


@pytest.mark.both_modes
def test_leaves_a_session_open(lasting):
    KEPT.append(ds.Client(lasting.api_key, base_url=lasting.url).realtime.connect())


@pytest.mark.both_modes
def test_knows_its_mode(io_mode, shared_mode):
    assert shared_mode == (io_mode == "shared")


@pytest.mark.both_modes
@pytest.mark.threads_only(reason="about the per-session threads")
def test_threads_only(io_mode, shared_mode):
    assert io_mode == "threads" and not shared_mode
"""


def run_modes(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a test file under the suite's shared-mode hooks and fixtures."""
    (tmp_path / "conftest.py").write_text(MODES_CONFTEST)
    (tmp_path / "test_modes.py").write_text(source)
    env = dict(os.environ)
    env.pop("DASHSCOPE_SYNC_TEST_SHARED", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )


@pytest.mark.timeout(120)
def test_both_modes_runs_each_test_twice_and_checks_sessions_left_open(tmp_path: Path) -> None:
    """A both_modes test runs as [threads] and [shared], a threads_only one as [threads] only,
    and a session left open at a shared-mode test's end fails it, as its reader thread
    fails a thread-mode test (the reactor's close would end it silently)."""
    proc = run_modes(tmp_path, MODES, "-k", "shared or knows or threads_only", "test_modes.py")
    out = proc.stdout + proc.stderr
    assert "PASSED test_modes.py::test_knows_its_mode[threads]" in out, out
    assert "PASSED test_modes.py::test_knows_its_mode[shared]" in out, out
    assert "PASSED test_modes.py::test_threads_only[threads]" in out, out
    assert "test_threads_only[shared]" not in out, out
    assert "ERROR test_modes.py::test_leaves_a_session_open[shared]" in out, out
    assert "1 session(s) left open on the reactor" in out, out
    assert "1 error" in out and proc.returncode == 1, out


def test_threads_only_needs_a_reason() -> None:
    """threads_only without a reason stops the run: the reason is what a reader checks."""

    class Node:
        nodeid = "test_x"

        def get_closest_marker(self, name: str) -> pytest.Mark | None:
            return pytest.mark.threads_only.mark if name == THREADS_ONLY else None

    with pytest.raises(pytest.UsageError, match="threads_only needs reason='why'"):
        _threads_only(Node())  # type: ignore[arg-type]
