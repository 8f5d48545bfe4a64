"""The speech recognition examples, each run as a user would with ``--local`` (see test_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_examples import ok, run_example

# Single mode (issue 18): the sessions here are opened by a child process (the
# command or the example run as a user runs it), which the test's ds.Reactor
# cannot reach, and no public option tells it to use one; the same code paths
# run in both modes in-process (test_cli*.py, test_docs_site.py).
pytestmark = pytest.mark.timeout(120)

_WORDS = "Hello! What is the weather like in Hangzhou today?"


def test_transcribe_file(tmp_path: Path) -> None:
    """transcribe_file.py prints the live final transcript and transcribe()'s whole result."""
    out = ok(run_example("transcribe_file.py", cwd=tmp_path))
    assert f"final [en]: {_WORDS}" in out
    assert f"transcribe(): {_WORDS} (en, 1 parts)" in out
    interims = int(out.split("interim transcripts: ")[1].split()[0])
    assert interims > 0


def test_transcribe_file_language(tmp_path: Path) -> None:
    """transcribe_file.py --language sends the language; a bad one is a usage error (exit 2)."""
    out = ok(run_example("transcribe_file.py", "--language", "en", cwd=tmp_path))
    assert _WORDS in out
    proc = run_example("transcribe_file.py", "--language", "english", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: language must be")


def test_transcribe_mic_local(tmp_path: Path) -> None:
    """transcribe_mic.py --local (the bundled question for the microphone) prints its words once."""
    out = ok(run_example("transcribe_mic.py", cwd=tmp_path))
    assert out.count(_WORDS) == 1
