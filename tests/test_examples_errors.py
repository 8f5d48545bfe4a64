"""How every example fails: one line on stderr and the exit code the dashscope-sync command uses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dashscope_sync as ds

from .test_examples import COMPACT, EXAMPLES, SCRIPTS, run_example

# Single mode (issue 18): the sessions here are opened by a child process (the
# command or the example run as a user runs it), which the test's ds.Reactor
# cannot reach, and no public option tells it to use one; the same code paths
# run in both modes in-process (test_cli*.py, test_docs_site.py).
pytestmark = pytest.mark.timeout(120)

#: The examples that write a reply (--output) and read a question (a WAV argument).
WRITERS = sorted(
    name for name in SCRIPTS if '"--output"' in (EXAMPLES / name).read_text(encoding="utf-8")
)
READERS = sorted(
    name for name in SCRIPTS if "load_input(args.wav)" in (EXAMPLES / name).read_text("utf-8")
)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed example printed on stderr (never a traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_the_failing_block_is_the_same_everywhere() -> None:
    """The block that turns a failure into one line and an exit code is word for word the same."""
    pattern = re.compile(r"^# Failing\..*?^        sys\.exit\(fail\(exc, 5\)\)$", re.M | re.S)
    blocks = {
        name: pattern.findall((EXAMPLES / name).read_text(encoding="utf-8"))
        for name in SCRIPTS - COMPACT
    }
    assert all(len(found) == 1 for found in blocks.values()), blocks
    assert len({found[0] for found in blocks.values()}) == 1
    assert len(WRITERS) >= 5 and len(READERS) >= 7  # the lists below are not empty by mistake


@pytest.mark.parametrize("script", WRITERS)
def test_unwritable_output_is_refused_before_connecting(tmp_path: Path, script: str) -> None:
    """--output in a missing directory exits 2 with one line, before any turn is held."""
    proc = run_example(script, "--output", str(tmp_path / "nope" / "x.wav"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "--output" in one_line(proc)
    assert proc.stdout == ""  # nothing happened: no connection, no turn


@pytest.mark.parametrize("script", READERS)
def test_bad_input_file_exits_5(tmp_path: Path, script: str) -> None:
    """A question that is not 16 kHz mono PCM16 WAV exits 5 with one line, before connecting."""
    (tmp_path / "q.wav").write_bytes(ds.pcm16_to_wav(b"\0\0" * 4800, 48_000))
    flag = ["--wav"] if '"--wav"' in (EXAMPLES / script).read_text("utf-8") else []
    proc = run_example(script, *flag, "q.wav", cwd=tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert "48000 Hz" in one_line(proc)
    assert proc.stdout == ""


@pytest.mark.parametrize("script", sorted(SCRIPTS - COMPACT))
def test_no_key_exits_3(tmp_path: Path, script: str) -> None:
    """Without --local and without DASHSCOPE_API_KEY every example says so and exits 3."""
    proc = run_example(script, cwd=tmp_path, local=False)
    assert proc.returncode == 3, proc.stderr
    assert ds.API_KEY_ENV in one_line(proc)


#: Runs full_duplex.py with a stand-in for one thing the machine may lack.
FULL_DUPLEX = """
import runpy, sys
import dashscope_sync as ds
if sys.argv[1] == "no-extra":
    sys.modules["sounddevice"] = None  # as without the [audio] extra
else:
    def no_device(*args, **kwargs):
        raise ds.AudioDeviceError("cannot open the output device: no such device")
    ds.Speaker = no_device
sys.argv = ["full_duplex.py", "--local"]
runpy.run_path({path!r}, run_name="__main__")
"""


@pytest.mark.parametrize(("lacking", "code"), [("no-extra", 8), ("no-device", 1)])
def test_full_duplex_fails_in_one_line(tmp_path: Path, lacking: str, code: int) -> None:
    """full_duplex.py without the [audio] extra (exit 8) or a sound device (1) prints one line."""
    script = FULL_DUPLEX.format(path=str(EXAMPLES / "full_duplex.py"))
    env = {k: v for k, v in os.environ.items() if k != ds.API_KEY_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", script, lacking],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == code, proc.stderr
    line = one_line(proc)
    if lacking == "no-extra":
        assert "[audio] extra" in line and "pip install -e '.[audio]'" in line
