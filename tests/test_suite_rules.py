"""The suite's own rules: where the [test] extra must be complete, a missing package fails."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import (
    REQUIRE_EXTRA_ENV,
    THREADS_ONLY,
    WORKERS_ENV,
    _threads_only,
    exclusive,
    need,
    worker_count,
)

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


def test_workers_are_two_per_core_capped_or_as_set() -> None:
    """-n auto starts two workers per core (the suite mostly waits), at most eight, unless
    PYTEST_XDIST_AUTO_NUM_WORKERS says how many."""
    assert [worker_count(cores) for cores in (1, 2, 3, 4, 64)] == [2, 4, 6, 8, 8]
    assert worker_count(2, "3") == 3
    assert worker_count(2, "") == 4
    with pytest.raises(pytest.UsageError, match=WORKERS_ENV):
        worker_count(2, "many")


SKIPS_ONE = """
import pytest


def test_runs() -> None:
    pass


def test_skips() -> None:
    pytest.skip("a reason the summary shows")
"""


def run_child_pytest(tmp_path: Path, *args: str, workers: str = "2") -> str:
    """Run pytest with this suite's configuration and conftest on a file of two tests."""
    (tmp_path / "test_two.py").write_text(SKIPS_ONE)
    # Not this run's own settings (its workers', PYTEST_ADDOPTS): the child is a run of its own.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_XDIST_") and k != "PYTEST_ADDOPTS"
    }
    env[WORKERS_ENV] = workers
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-p", "tests.conftest", *args,
         str(tmp_path / "test_two.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout
    assert "SKIPPED [1] test_two.py:10: a reason the summary shows" in proc.stdout
    return proc.stdout


@pytest.mark.timeout(120)
def test_the_suite_runs_in_workers_by_default(tmp_path: Path) -> None:
    """Plain pytest runs in workers (-n auto), and -ra still lists skip reasons."""
    need("xdist", "pytest-xdist runs the suite in workers")
    out = run_child_pytest(tmp_path, workers="2")
    assert "created: 2/2 workers" in out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", [("-p", "no:xdist"), ("-n", "0")], ids=["no-xdist", "n0"])
def test_one_test_runs_without_workers(tmp_path: Path, args: tuple[str, ...]) -> None:
    """-p no:xdist and -n 0 run the tests in pytest's own process, skip summary included."""
    if "-n" in args:
        need("xdist", "-n is pytest-xdist's option")
    out = run_child_pytest(tmp_path, *args)
    assert "workers" not in out


def test_exclusive_holds_a_lock_all_the_run_s_workers_share(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """exclusive() holds a file lock in the folder every worker of the run shares; nobody else
    gets it until the holder leaves."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    with (
        exclusive(tmp_path_factory, "suite-rules"),
        open(shared / "suite-rules.lock", "w") as other,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(shared / "suite-rules.lock", "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
