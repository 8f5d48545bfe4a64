"""Shared fixtures: a local realtime server per test, and a thread-leak check."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Generator, Iterator
from types import ModuleType

import pytest

import dashscope_sync as ds
from dashscope_sync._core.connection import Connection
from dashscope_sync._deadline import Deadline
from dashscope_sync.testing import LocalRealtimeServer

try:
    import fcntl
except ImportError:  # Windows: no run-wide locks (run one worker: -n 0)
    fcntl = None  # type: ignore[assignment]

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


# The [test] extra ------------------------------------------------------------------

#: Set to 1 (as CI is, through CI=true or .ci/run) where the [test] extra must be
#: complete: a package of it that does not import fails the tests that need it.
REQUIRE_EXTRA_ENV = "DASHSCOPE_SYNC_REQUIRE_TEST_EXTRA"


def extra_required() -> bool:
    """Whether a missing [test] extra package is a failure here, not a skip."""
    return os.environ.get(REQUIRE_EXTRA_ENV) == "1" or os.environ.get("CI", "").lower() == "true"


def need(module: str, reason: str | None = None) -> ModuleType:
    """Import ``module``, which the [test] extra installs, for a test (or a test module).

    Without it the test is skipped, as ``pytest.importorskip`` does, except
    where the extra must be complete (CI): there a broken or partial install
    fails, instead of turning into silent skips.
    """
    if not extra_required():
        return pytest.importorskip(module, reason=reason)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" ({reason})" if reason else ""
        pytest.fail(
            f"{module} does not import{why}: {exc}; the [test] extra must be complete where "
            f"CI=true or {REQUIRE_EXTRA_ENV}=1 (pip install -e '.[test]')",
            pytrace=False,
        )


def _library_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dashscope_sync-")]


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves a session thread running after it ends."""
    before = set(_library_threads())
    yield
    leaked = [t for t in _library_threads() if t not in before]
    for thread in leaked:
        thread.join(5.0)  # a thread that is just finishing gets its moment
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"


# Workers (pytest-xdist) --------------------------------------------------------------

#: xdist's own override of the worker count that ``-n auto`` picks (the default).
WORKERS_ENV = "PYTEST_XDIST_AUTO_NUM_WORKERS"
#: No more workers than this however many cores: each imports the package and
#: the [test] extra (about 3 s of CPU) before it runs a test.
MAX_WORKERS = 8


def worker_count(cores: int, override: str | None = None) -> int:
    """The workers ``-n auto`` starts: ``override`` (a number) if given, else two per core.

    The suite mostly waits on loopback sockets and timers (about 110 s of CPU in
    265 s alone on 2 cores), so twice as many workers as cores keep the cores
    busy without a queue of runnable tests.
    """
    if override:
        try:
            return max(0, int(override))
        except ValueError:
            raise pytest.UsageError(f"{WORKERS_ENV}={override!r} is not a number") from None
    return max(1, min(MAX_WORKERS, 2 * cores))


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """Run in workers by default: ``-n auto --dist worksteal`` unless ``-n``/``--dist`` is given.

    Set here, not in addopts: ``-p no:xdist`` (or a venv without pytest-xdist)
    would then fail on an unknown ``-n`` instead of running in this process. A
    wrapper, so it runs before xdist's own hook reads the options. worksteal:
    test times range from 1 ms to 20 s, so idle workers take over queued tests.
    """
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        if config.option.numprocesses is None and not config.option.tx:
            config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "worksteal"
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return worker_count(cores or 1, os.environ.get(WORKERS_ENV))


@contextlib.contextmanager
def exclusive(factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """Hold the run's lock ``name``: one test at a time in all the run's workers.

    For what tests share outside their process (the audio device, the tree's
    caches). A file lock, not an xdist group: ``--dist loadgroup`` silently
    stops grouping with pytest 9.2 (pytest-xdist issue 1386). The workers'
    base temp dirs are subfolders of the run's, where the lock file lives.
    """
    base = factory.getbasetemp()
    folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with open(folder / f"{name}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture
def tree_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run alone among the workers: mypy's and ruff's caches in the source tree."""
    with exclusive(tmp_path_factory, "tree-caches"):
        yield


# Shared mode (issue 18) -----------------------------------------------------------

#: Set to 1 to run every test in shared mode: each test's clients read their
#: sessions on one ds.Reactor (the whole suite again, for a full check).
SHARED_ENV = "DASHSCOPE_SYNC_TEST_SHARED"
#: The marker of tests (a module's ``pytestmark``, a class or a function) that
#: run in both modes (parametrized, not copied): ``pytest.mark.both_modes``.
BOTH_MODES = "both_modes"
#: The marker of a test in a both_modes module that runs with threads only,
#: because its subject is the per-session threads themselves (or a process the
#: test's reactor cannot reach): ``pytest.mark.threads_only(reason="...")``.
THREADS_ONLY = "threads_only"
#: How long a session of a shared-mode test may take to end after the test
#: (and its fixtures: the local server closes) ended, as the leak check gives
#: a session's reader thread in thread mode.
SESSION_END_GRACE = 5.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{BOTH_MODES}: run each test with threads and again in shared mode"
    )
    config.addinivalue_line(
        "markers",
        f"{THREADS_ONLY}(reason): in a {BOTH_MODES} scope, run this test with threads only",
    )


def _threads_only(node: pytest.Item | pytest.Function) -> bool:
    marker = node.get_closest_marker(THREADS_ONLY)
    if marker is None:
        return False
    if not marker.kwargs.get("reason"):
        raise pytest.UsageError(f"{node.nodeid}: {THREADS_ONLY} needs reason='why'")
    return True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker(BOTH_MODES) is not None:
        modes = ["threads"] if _threads_only(metafunc.definition) else ["threads", "shared"]
        metafunc.fixturenames.append("io_mode")
        metafunc.parametrize("io_mode", modes)


def _shared(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    mode = callspec.params.get("io_mode") if callspec is not None else None
    if mode is not None:
        return bool(mode == "shared")
    return os.environ.get(SHARED_ENV) == "1" and not _threads_only(request.node)


@pytest.fixture
def shared_mode(request: pytest.FixtureRequest) -> bool:
    """Whether this test runs in shared mode: for a process the test starts,
    which must make its own ds.Reactor (the test's cannot reach it)."""
    return _shared(request)


@pytest.fixture(autouse=True)
def _io_mode(request: pytest.FixtureRequest, no_thread_leaks: None) -> Iterator[None]:
    """In shared mode, give every Client made without a reactor this test's one.

    After the leak check's start (its end then sees the reactor's threads
    joined) and before any fixture that connects. At the end, every session
    the reactor read must have ended (as the leak check wants every reader
    thread ended in thread mode) before the reactor closes and would end it.
    """
    if not _shared(request):
        yield
        return
    # One reactor per test, not per module: it costs ~1.5 ms of CPU a test
    # (5 threads and a socket pair made and joined; up to ~6 ms of wall on a
    # loaded 2-core machine), ~2 s of CPU over the ~1200 shared-mode tests,
    # and a test that grows the pool or leaves a handler stuck cannot slow
    # the next one, nor hide a session it left open.
    reactor = ds.Reactor()
    original_init = ds.Client.__init__
    original_add = reactor.add
    # The connections this test's sessions handed to the reactor (added from
    # any test thread, read at the end only). Weak: a session left open is
    # still held by the reactor, and one that ended must be free to go
    # (test_leaks measures memory over hundreds of sessions).
    added: weakref.WeakSet[Connection] = weakref.WeakSet()

    def init(self: ds.Client, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("reactor", reactor)
        original_init(self, *args, **kwargs)  # type: ignore[arg-type]

    def add(connection: Connection) -> None:
        added.add(connection)
        original_add(connection)

    ds.Client.__init__ = init  # type: ignore[method-assign]
    reactor.add = add  # type: ignore[method-assign]
    try:
        yield
    finally:
        ds.Client.__init__ = original_init  # type: ignore[method-assign]
        deadline = Deadline(SESSION_END_GRACE)
        left = list(added)
        for connection in left:
            connection.ended.wait(deadline.remaining())
        open_left = sum(1 for connection in left if not connection.ended.is_set())
        del left
        reactor.close()
        assert not open_left, f"{open_left} session(s) left open on the reactor"


@pytest.fixture
def server() -> Iterator[LocalRealtimeServer]:
    with LocalRealtimeServer() as srv:
        yield srv


@pytest.fixture
def client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


@pytest.fixture
def session(client: ds.Client) -> Iterator[ds.RealtimeSession]:
    with client.realtime.connect(model=MODEL) as sess:
        yield sess


# A real audio device ----------------------------------------------------------------

REQUIRE_ENV = "DASHSCOPE_SYNC_REQUIRE_AUDIO_DEVICE"

_PROBE = """
import sounddevice as sd
out = sd.RawOutputStream(samplerate=24000, blocksize=1200, channels=1, dtype="int16", latency=0.1)
inp = sd.RawInputStream(samplerate=16000, blocksize=1600, channels=1, dtype="int16", latency=0.1)
out.start(); inp.start(); out.write(bytes(4800)); inp.read(1600)
out.close(); inp.close()
"""


def _device_problem() -> str | None:
    """Why no duplex device works here, or None. In a subprocess: a broken
    sound server can hang PortAudio, and this must not hang the suite."""
    try:
        import sounddevice  # noqa: F401
    except ImportError:
        return "sounddevice is not installed (the [audio] extra)"
    except OSError as exc:
        return f"PortAudio is missing ({exc}); apt-get install libportaudio2"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return (
            "opening the default PortAudio devices hung (a sound server without a session manager?)"
        )
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"no working default input and output device ({last}); run .ci/audio-device.sh"
    return None


@pytest.fixture(scope="session")
def _audio_device_problem(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    with exclusive(tmp_path_factory, "audio-device"):  # the probe opens the device too
        return _device_problem()


@pytest.fixture
def audio_device(
    _audio_device_problem: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A working default input and output device (CI: the PipeWire loopback of
    .ci/audio-device.sh). Without one, skip with the reason; but fail when
    DASHSCOPE_SYNC_REQUIRE_AUDIO_DEVICE=1 says one must be there (CI sets it).
    One test at a time has it among the workers: what one plays, all would hear."""
    problem = _audio_device_problem
    if problem is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
        pytest.skip(f"no audio device: {problem}")
    with exclusive(tmp_path_factory, "audio-device"):
        yield
