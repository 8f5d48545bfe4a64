"""The text-to-speech examples, each run as a user would with ``--local`` (see test_examples.py)."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from .test_examples import EXAMPLES, ok, run_example

# Single mode (issue 18): the sessions here are opened by a child process (the
# command or the example run as a user runs it), which the test's ds.Reactor
# cannot reach, and no public option tells it to use one; the same code paths
# run in both modes in-process (test_cli*.py, test_docs_site.py).
pytestmark = pytest.mark.timeout(120)


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 24000 and wav.getnchannels() == 1
        return wav.getnframes() / wav.getframerate()


def test_speak(tmp_path: Path) -> None:
    """speak.py speaks its built-in text and writes the speech as a WAV."""
    out = ok(run_example("speak.py", cwd=tmp_path))
    assert "voice: Cherry, 24000 Hz" in out
    assert "characters" in out and "speech.wav" in out
    assert _wav_seconds(tmp_path / "speech.wav") > 1.0


def test_speak_given_text_and_voice(tmp_path: Path) -> None:
    """speak.py speaks the text and voice given on its command line."""
    out = ok(
        run_example("speak.py", "Short.", "--voice", "Ethan", "--output", "s.wav", cwd=tmp_path)
    )
    assert "voice: Ethan" in out and "spoke 6 characters" in out
    assert 0 < _wav_seconds(tmp_path / "s.wav") < 1.0


def test_speak_llm_stream(tmp_path: Path) -> None:
    """speak_llm_stream.py speaks the LLM's streamed reply, all of it, and ends the session."""
    out = ok(run_example("speak_llm_stream.py", cwd=tmp_path))
    assert "This is a simulated reply from the local DashScope server." in out
    assert "first audio" in out and "answer.wav" in out
    # The whole reply was spoken: its audio follows its length (60 ms a character here).
    assert _wav_seconds(tmp_path / "answer.wav") > 5.0


#: Runs speak.py --play as without the [audio] extra.
_NO_EXTRA = """
import runpy, sys
sys.modules["sounddevice"] = None
sys.argv = ["speak.py", "--local", "--play"]
runpy.run_path({path!r}, run_name="__main__")
"""


def test_speak_play_without_the_audio_extra(tmp_path: Path) -> None:
    """speak.py --play without the [audio] extra exits 8 with one line, before connecting."""
    script = _NO_EXTRA.format(path=str(EXAMPLES / "speak.py"))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 8, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "[audio] extra" in proc.stderr
    assert proc.stdout == ""  # not connected: no "voice:" line
