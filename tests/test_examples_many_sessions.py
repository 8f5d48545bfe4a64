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
    threads = _threads(out)
    # One reader and the pool's 4 (it may add one if the machine stalls a handler).
    assert threads.count("dashscope_sync-reactor") == 1
    handlers = [n for n in threads if re.fullmatch(r"dashscope_sync-handlers-\d+", n)]
    assert len(handlers) == len(threads) - 1 and 4 <= len(handlers) < 10, threads
    handled = re.search(r"^handlers ran on: (\d+) pool thread", out, re.M)
    assert handled and 1 <= int(handled.group(1)) <= 4, out
    assert re.search(r"^connected in [\d.]+ s, answered in [\d.]+ s$", out, re.M)


def test_many_sessions_threads_do_not_grow_with_sessions(tmp_path: Path) -> None:
    """Two sessions use about the same library threads as the default two hundred (a
    reader and the handler pool, never a thread per session)."""
    out = ok(run_example("many_sessions.py", "--sessions", "2", cwd=tmp_path))
    assert "replies OK: 2/2" in out
    assert 5 <= len(_threads(out)) < 10


def test_many_sessions_refuses_a_count_below_one(tmp_path: Path) -> None:
    """--sessions 0 is a usage error (exit 2) before anything connects."""
    proc = run_example("many_sessions.py", "--sessions", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--sessions must be at least 1" in proc.stderr
    assert proc.stdout == ""
