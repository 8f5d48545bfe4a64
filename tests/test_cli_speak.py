"""``dashscope-sync speak`` against the local server: output, standard input, exit codes."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import wave
from pathlib import Path

import pytest

from dashscope_sync._cli.main import EXIT_API, EXIT_NETWORK, EXIT_NOT_INSTALLED, EXIT_USAGE, main
from dashscope_sync.testing import LocalRealtimeServer

from .test_cli_terminal import Terminal

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes


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
    assert "exit codes:" in text and "the whole command" in text


#: Four lines of about 2.4 s of speech each (the local voice: 60 ms a character).
_FOUR_LINES = "".join(f"Line {n}: a sentence long enough to take a while.\n" for n in range(4))


def test_speak_timeout_bounds_the_whole_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--timeout bounds the speeches together: four of over 1.2 s each exceed 3 s (exit 6)."""
    # 100 ms of audio a delta, one delta each 50 ms at least: a line takes over 1.2 s to come.
    with LocalRealtimeServer(delta_delay=0.05) as slow:
        monkeypatch.setenv("DASHSCOPE_API_KEY", slow.api_key)
        monkeypatch.setattr("sys.stdin", io.StringIO(_FOUR_LINES))
        code, out, err = _run("speak", "-", "--url", slow.url, "--timeout", "3",
                              "--output", str(tmp_path / "a.wav"))  # fmt: skip
    assert code == EXIT_NETWORK, err
    assert out == ""
    (line,) = err.splitlines()
    assert line == "dashscope-sync: error: timed out after 3 s (--timeout) waiting for the audio"
    assert not (tmp_path / "a.wav").exists()


def test_speak_bogus_option_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """speak --bogus exits 2 with speak's usage, not the top level's."""
    with pytest.raises(SystemExit) as exit_info:
        main(["speak", "Hi", "--bogus"])
    assert exit_info.value.code == 2
    shown = capsys.readouterr().err
    assert "usage: dashscope-sync speak" in shown and "--bogus" in shown


def test_speak_bad_region_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--region mars is argparse's usage error naming --region."""
    with pytest.raises(SystemExit) as exit_info:
        main(["speak", "Hi", "--region", "mars"])
    assert exit_info.value.code == 2
    assert "--region" in capsys.readouterr().err


def test_speak_play_without_the_audio_extra_exits_8(
    url: str, monkeypatch: pytest.MonkeyPatch, server: LocalRealtimeServer
) -> None:
    """--play without the [audio] extra exits 8 with the install hint, before connecting."""
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as without the extra
    code, out, err = _run("speak", "Hi", "--url", url, "--play")
    assert code == EXIT_NOT_INSTALLED, err
    assert err.count("\n") == 1 and "--play" in err and "[audio]" in err
    assert out == "" and server.received == []  # nothing was sent


def test_speak_status_is_cleared_before_the_summary_on_a_pty(
    server: LocalRealtimeServer, tmp_path: Path
) -> None:
    """On a terminal the progress line is cleared: the screen shows the summary line alone."""
    with Terminal("speak", "Hello there.", "--url", server.url, "--output", "s.wav",
                  key=server.api_key, cwd=tmp_path) as term:  # fmt: skip
        code, raw, rows = term.finish()
    assert code == 0, raw
    assert "speaking: 1 / 1 done" in raw  # the progress was shown
    assert len(rows) == 1 and rows[0].startswith("speech: ") and rows[0].endswith("-> s.wav"), rows


def test_speak_timeout_on_a_pty_keeps_the_progress_then_one_error_line(tmp_path: Path) -> None:
    """A timeout on a terminal leaves the progress row as it stood and the error on the next."""
    with (
        LocalRealtimeServer(delta_delay=0.2) as slow,  # over 6 s for this line's 30 deltas
        Terminal("speak", "Line one: a sentence long enough to take a while.", "--url", slow.url,
                 "--timeout", "3", "--output", "s.wav", key=slow.api_key,
                 cwd=tmp_path) as term,
    ):  # fmt: skip
        code, raw, rows = term.finish()
    assert code == EXIT_NETWORK, raw
    assert rows == [
        "speaking: 1 sent",
        "dashscope-sync: error: timed out after 3 s (--timeout) waiting for the audio",
    ], rows


def test_speak_stalled_standard_input_ends_at_timeout(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """speak - with a pipe that sends one line and then nothing ends at --timeout (exit 6)."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end) as stdin, os.fdopen(write_end, "w") as writer:
        writer.write("One line, then the writer falls silent.\n")
        writer.flush()  # and stays open: no end of input
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, err = _run("speak", "-", "--url", url, "--timeout", "2",
                              "--output", str(tmp_path / "a.wav"))  # fmt: skip
    assert code == EXIT_NETWORK, err
    assert out == ""
    (line,) = err.splitlines()
    assert line == "dashscope-sync: error: timed out after 2 s (--timeout) reading standard input"
