"""examples/many_sessions.py, run as a user would with ``--local`` (see test_examples.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_examples import ok, run_example

pytestmark = pytest.mark.timeout(120)


def _threads(out: str) -> list[str]:
    """The library threads the example says it used."""
    found = re.search(r"^library threads: (\d+) \((.*)\)$", out, re.M)
    assert found, out
    names = found.group(2).split(", ")
    assert int(found.group(1)) == len(names)
    return names


def test_many_sessions_each_get_their_own_answer_on_a_few_threads(tmp_path: Path) -> None:
    """By default 200 sessions on one reactor all get the reply to their own question, on
    one reader and the handler pool, with handlers run on that pool."""
    out = ok(run_example("many_sessions.py", cwd=tmp_path))
    assert "sessions: 200 on one reactor" in out
    assert "replies OK: 200/200" in out
    assert sorted(_threads(out)) == [
        *(f"dashscope_sync-handlers-{n}" for n in range(1, 5)),
        "dashscope_sync-reactor",
    ]
    handled = re.search(r"^handlers ran on: (\d+) pool thread", out, re.M)
    assert handled and 1 <= int(handled.group(1)) <= 4, out
    assert re.search(r"^connected in [\d.]+ s, answered in [\d.]+ s$", out, re.M)


def test_many_sessions_threads_do_not_grow_with_sessions(tmp_path: Path) -> None:
    """Two sessions use the same library threads as the default two hundred."""
    out = ok(run_example("many_sessions.py", "--sessions", "2", cwd=tmp_path))
    assert "replies OK: 2/2" in out
    assert len(_threads(out)) == 5


def test_many_sessions_refuses_a_count_below_one(tmp_path: Path) -> None:
    """--sessions 0 is a usage error (exit 2) before anything connects."""
    proc = run_example("many_sessions.py", "--sessions", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--sessions must be at least 1" in proc.stderr
    assert proc.stdout == ""
