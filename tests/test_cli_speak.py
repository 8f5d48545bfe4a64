"""``dashscope-sync speak`` against the local server: output, standard input, exit codes."""

from __future__ import annotations

import contextlib
import io
import wave
from pathlib import Path

import pytest

from dashscope_sync._cli.main import EXIT_API, EXIT_USAGE, main
from dashscope_sync.testing import LocalRealtimeServer


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def url(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key)
    return server.url


def test_speak_writes_a_wav_of_the_chosen_rate(url: str, tmp_path: Path) -> None:
    """speak TEXT --output writes a playable WAV at --rate and prints one summary line."""
    target = tmp_path / "hello.wav"
    code, out, err = _run("speak", "Hello, I am Qwen.", "--url", url, "--rate", "16000",
                          "--output", str(target))  # fmt: skip
    assert (code, err) == (0, "")
    assert out.startswith("speech: ") and str(target) in out
    with wave.open(str(target)) as wav:
        assert wav.getframerate() == 16000 and wav.getnframes() > 0


def test_speak_dash_speaks_each_line_of_standard_input(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """speak - reads standard input, one line a segment, and writes all of it."""
    one, both = tmp_path / "one.wav", tmp_path / "both.wav"
    monkeypatch.setattr("sys.stdin", io.StringIO("First line.\n"))
    assert _run("speak", "-", "--url", url, "--output", str(one))[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("First line.\n\nA second, longer line.\n"))
    code, out, _ = _run("speak", "-", "--url", url, "--output", str(both))
    assert "characters" in out
    assert code == 0
    with wave.open(str(one)) as a, wave.open(str(both)) as b:
        assert b.getnframes() > 2 * a.getnframes()


def test_speak_writes_a_compressed_format_as_is(url: str, tmp_path: Path) -> None:
    """--format wav writes the server's WAV bytes as they came."""
    target = tmp_path / "x.wav"
    assert _run("speak", "Hi.", "--url", url, "--format", "wav", "--output", str(target))[0] == 0
    assert target.read_bytes().startswith(b"RIFF")


def test_speak_bad_input_is_a_usage_error_without_a_traceback(url: str, tmp_path: Path) -> None:
    """Empty text and an out-of-range speed exit 2 with one line on stderr."""
    code, _, err = _run("speak", "  ", "--url", url, "--output", str(tmp_path / "a.wav"))
    assert code == EXIT_USAGE and err.count("\n") == 1 and "empty" in err
    code, _, err = _run("speak", "Hi", "--url", url, "--speed", "3", "--output",
                        str(tmp_path / "a.wav"))  # fmt: skip
    assert code == EXIT_USAGE and "speech_rate" in err and "Traceback" not in err


def test_speak_refused_voice_is_an_api_error(url: str, tmp_path: Path) -> None:
    """A voice the service refuses exits with the API error code, naming the refusal."""
    code, _, err = _run("speak", "Hi", "--url", url, "--voice", "Nobody", "--output",
                        str(tmp_path / "a.wav"))  # fmt: skip
    assert code == EXIT_API and "Nobody" in err


def test_speak_help_has_examples() -> None:
    """speak --help shows the options and examples."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(out):
        main(["speak", "--help"])
    assert exit_info.value.code == 0
    text = out.getvalue()
    assert "examples:" in text and "--voice" in text and "--play" in text
