"""``talk --transcript FILE`` and ``translate --transcript FILE``: the transcript written at the end."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

SAMPLE = str(ds.sample_wav_path())


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = _cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def key(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")


def test_talk_writes_the_transcript_as_json(server: LocalRealtimeServer, tmp_path: Path) -> None:
    """talk --transcript x.json writes the user's transcription and the reply as JSON."""
    path = tmp_path / "t.json"
    code, out, err = run(
        "talk", SAMPLE, "--url", server.url, "--fast",
        "--output", str(tmp_path / "o.wav"), "--transcript", str(path),
    )  # fmt: skip
    assert code == 0, err
    transcript = ds.Transcript.from_json(path.read_text(encoding="utf-8"))
    assert [turn.role for turn in transcript] == ["user", "assistant"]
    assert transcript[1].text and transcript[1].text in out
    assert f"transcript: 2 turns -> {path}" in out


def test_talk_writes_markdown_for_an_md_name(server: LocalRealtimeServer, tmp_path: Path) -> None:
    """A .md name gets the Markdown form."""
    path = tmp_path / "t.md"
    code, _, err = run(
        "talk", SAMPLE, "--url", server.url, "--fast",
        "--output", str(tmp_path / "o.wav"), "--transcript", str(path),
    )  # fmt: skip
    assert code == 0, err
    text = path.read_text(encoding="utf-8")
    assert text.startswith("**User:** ") and "**Assistant:** " in text


def test_translate_writes_source_and_translation(
    server: LocalRealtimeServer, tmp_path: Path
) -> None:
    """translate --transcript writes the source turn and its translation."""
    path = tmp_path / "t.json"
    code, _, err = run(
        "translate", SAMPLE, "--to", "ja", "--url", server.url, "--fast",
        "--output", str(tmp_path / "o.wav"), "--transcript", str(path),
    )  # fmt: skip
    assert code == 0, err
    source, translation = ds.Transcript.from_json(path.read_text(encoding="utf-8"))
    assert source.role == "user" and source.text
    assert translation.role == "assistant" and "translation into ja" in translation.text


@pytest.mark.parametrize("command", ["talk", "translate"])
def test_an_unwritable_transcript_is_refused_before_connecting(
    server: LocalRealtimeServer, tmp_path: Path, command: str
) -> None:
    """A --transcript in a missing directory is a usage error, and nothing connects."""
    bad = str(tmp_path / "missing" / "t.json")
    extra = ["--to", "en"] if command == "translate" else []
    code, _, err = run(command, SAMPLE, *extra, "--url", server.url, "--transcript", bad)
    assert code == _cli.EXIT_USAGE and "--transcript" in err
    assert not server.connections
