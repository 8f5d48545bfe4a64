"""``dashscope-sync transcribe``: output on a terminal and piped, and the exit codes."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

from ._asr_peer import asr_peer, text_event
from .audio_fakes import VirtualInput
from .test_cli_terminal import Terminal, TtyText, screen_rows

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

_WORDS = "Hello! What is the weather like in Hangzhou today?"


def run(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    """Run the command in this process; with ``tty``, both streams say they are one terminal."""
    out: io.StringIO = TtyText() if tty else io.StringIO()
    err: io.StringIO = TtyText() if tty else io.StringIO()
    code = _cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def key(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "k")


@pytest.mark.usefixtures("key")
class TestOutput:
    def test_piped_prints_final_lines_only(self, server: LocalRealtimeServer) -> None:
        """Piped, only each utterance's final transcript is written, one per line."""
        code, out, err = run("transcribe", str(ds.sample_wav_path()), "--url", server.url, "--fast")
        assert code == 0, err
        assert out == _WORDS + "\n"

    def test_terminal_shows_interims_in_place(self, server: LocalRealtimeServer) -> None:
        """On a terminal interims are the status line (stderr), cleared before the final line."""
        code, out, err = run(
            "transcribe", str(ds.sample_wav_path()), "--url", server.url, "--fast", tty=True
        )
        assert code == 0, err
        assert err.count("\r\x1b[K") > 2  # interims, each overwriting the last
        assert err.endswith("\r\x1b[K")  # the last one cleared, not left behind
        assert "\n" not in err
        assert out == _WORDS + "\n"

    def test_language_is_sent(self, server: LocalRealtimeServer) -> None:
        """--language goes into the session's one update."""
        code, _, err = run(
            "transcribe",
            str(ds.sample_wav_path()),
            "--url",
            server.url,
            "--fast",
            "--language",
            "en",
        )
        assert code == 0, err
        (update,) = [f for f in server.received if f.get("type") == "session.update"]
        assert update["session"]["input_audio_transcription"] == {"language": "en"}


class TestErrors:
    def test_interim_line_ended_before_an_error(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A failure after an interim ends its line first, then exits 7 with one error line."""
        failed = {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "i",
            "error": {"code": "asr_failed", "message": "cannot decode"},
        }
        wav = tmp_path / "a.wav"
        wav.write_bytes(ds.pcm16_to_wav(b"\x01\x00" * 3200, 16000))
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        script = {
            "on_append": lambda n: [text_event("i", "partial", " words"), failed] if n == 1 else []
        }
        with asr_peer(**script) as (peer, _):
            code, out, err = run("transcribe", str(wav), "--url", peer.url, "--fast", tty=True)
        assert code == _cli.EXIT_API
        assert out == ""
        assert err.startswith("\r\x1b[Kpartial")
        rows = screen_rows(err, 80)
        assert rows[0] == "partial words", rows  # kept, ended with a newline
        assert rows[1].startswith("dashscope-sync: error:") and "cannot decode" in rows[1], rows
        assert "Traceback" not in err

    @pytest.mark.usefixtures("key")
    @pytest.mark.parametrize("argv", [("transcribe",), ("transcribe", "x.wav", "--mic")])
    def test_file_or_mic(self, argv: tuple[str, ...]) -> None:
        """Neither a file nor --mic, or both, is a usage error."""
        code, _, err = run(*argv)
        assert code == _cli.EXIT_USAGE
        assert "--mic" in err

    @pytest.mark.usefixtures("key")
    def test_other_family_model(self) -> None:
        """A conversation model is a usage error naming --model, before connecting."""
        code, _, err = run("transcribe", "x.wav", "--model", ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)
        assert code == _cli.EXIT_USAGE
        assert "--model" in err

    @pytest.mark.usefixtures("key")
    def test_missing_file(self, server: LocalRealtimeServer, tmp_path: Path) -> None:
        """A missing file exits 5 naming it."""
        missing = tmp_path / "none.wav"
        code, _, err = run("transcribe", str(missing), "--url", server.url)
        assert code == _cli.EXIT_BAD_INPUT
        assert "none.wav" in err

    def test_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without DASHSCOPE_API_KEY it exits 3."""
        monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
        assert run("transcribe", "x.wav")[0] == _cli.EXIT_NO_KEY

    def test_bad_language_is_argparse_usage(self) -> None:
        """A language the service does not document is refused by argparse (exit 2)."""
        with pytest.raises(SystemExit) as caught:
            run("transcribe", "x.wav", "--language", "english")
        assert caught.value.code == 2

    def test_help_has_examples(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help shows examples and the exit codes."""
        with pytest.raises(SystemExit):
            _cli.main(["transcribe", "--help"])
        shown = capsys.readouterr().out
        assert "transcribe --mic" in shown and "exit codes:" in shown


class _InterruptAfterFinal(io.StringIO):
    """Standard output on which the first final line is followed by Ctrl-C (raised on the
    main thread, where the command writes, as a real Ctrl-C would be)."""

    interrupted = False

    def write(self, text: str) -> int:
        written = super().write(text)
        if text.endswith("\n") and not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return written


def test_mic_until_ctrl_c(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """--mic streams the microphone and prints each final line; Ctrl-C finishes the session
    (session.finish sent, its answer awaited) and exits 0."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "k")
    inputs: list[VirtualInput] = []

    def stream(callback: Callable[..., None]) -> VirtualInput:
        inputs.append(VirtualInput(callback))
        pcm = spoken_pcm16("speaking into the microphone") + b"\x00\x00" * 16000
        for start in range(0, len(pcm), 3200):
            inputs[-1].push(pcm[start : start + 3200])  # queued until the feed reads it
        return inputs[-1]

    kit = attrs.evolve(_cli._transcribe_kit(), microphone=lambda: ds.Microphone(stream=stream))
    monkeypatch.setattr(_cli, "_transcribe_kit", lambda: kit)
    out, err = _InterruptAfterFinal(), io.StringIO()
    code = _cli.main(["transcribe", "--mic", "--url", server.url], out=out, err=err)
    assert code == 0, err.getvalue()
    assert out.interrupted
    assert out.getvalue() == "speaking into the microphone\n"
    assert "listening" in err.getvalue()
    assert [f["type"] for f in server.received].count("session.finish") == 1


@pytest.mark.usefixtures("key")
def test_timeout_bounds_the_whole_command(server: LocalRealtimeServer) -> None:
    """--timeout 1 ends a 3.8 s upload paced like speech (each step alone is quick): exit 6."""
    code, _, err = run("transcribe", str(ds.sample_wav_path()), "--url", server.url,
                         "--timeout", "1")  # fmt: skip
    assert code == _cli.EXIT_NETWORK, err
    (line,) = err.splitlines()
    assert line.startswith("dashscope-sync: error: timed out after 1 s (--timeout)"), line


@pytest.mark.usefixtures("key")
def test_unanswered_finish_is_bounded_by_timeout(server: LocalRealtimeServer) -> None:
    """A server that never answers session.finish is given up at --timeout, naming the step."""
    server.on_client_event("session.finish", None)  # swallowed: no session.finished, ever
    code, _, err = run("transcribe", str(ds.sample_wav_path()), "--url", server.url, "--fast",
                         "--timeout", "2")  # fmt: skip
    assert code == _cli.EXIT_NETWORK, err
    (line,) = err.splitlines()
    assert line == (
        "dashscope-sync: error: timed out after 2 s (--timeout) waiting for the last transcripts"
    ), line


def test_bogus_option_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """transcribe --bogus exits 2 with transcribe's usage, not the top level's."""
    with pytest.raises(SystemExit) as caught:
        _cli.main(["transcribe", "--bogus"])
    assert caught.value.code == 2
    shown = capsys.readouterr().err
    assert "usage: dashscope-sync transcribe" in shown and "--bogus" in shown


def test_interim_line_ended_before_an_error_on_a_pty(tmp_path: Path) -> None:
    """On a real terminal a failure keeps the interim on its own row and the error on the next."""
    failed = {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": "i",
        "error": {"code": "asr_failed", "message": "cannot decode"},
    }
    wav = tmp_path / "a.wav"
    wav.write_bytes(ds.pcm16_to_wav(b"\x01\x00" * 3200, 16000))
    script = {
        "on_append": lambda n: [text_event("i", "partial", " words"), failed] if n == 1 else []
    }
    with (
        asr_peer(**script) as (peer, _),
        Terminal("transcribe", str(wav), "--url", peer.url, "--fast", key="k") as term,
    ):
        code, raw, rows = term.finish()
    assert code == _cli.EXIT_API, raw
    assert rows[0] == "partial words", rows  # the interim, kept and ended
    assert len(rows) == 2 and rows[1].startswith("dashscope-sync: error:"), rows
    assert "cannot decode" in rows[1], rows


def test_bad_region_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--region mars is argparse's usage error naming --region."""
    with pytest.raises(SystemExit) as caught:
        _cli.main(["transcribe", "x.wav", "--region", "mars"])
    assert caught.value.code == 2
    assert "--region" in capsys.readouterr().err


def test_ctrl_c_on_a_pty_is_one_line_after_the_interim(server: LocalRealtimeServer) -> None:
    """Ctrl-C mid-file on a terminal keeps the interim's row and prints one error line below it."""
    with Terminal("transcribe", str(ds.sample_wav_path()), "--url", server.url,
                  key=server.api_key or "k") as term:  # fmt: skip
        term.wait_for(b"\x1b[K")  # an interim is shown (the upload is paced: 3.8 s)
        term.proc.send_signal(signal.SIGINT)
        code, raw, rows = term.finish()
    assert code == _cli.EXIT_INTERRUPTED, raw
    assert "Traceback" not in raw
    assert len(rows) == 2 and rows[0], rows  # the interim as it stood
    assert rows[1] == "dashscope-sync: error: interrupted", rows
