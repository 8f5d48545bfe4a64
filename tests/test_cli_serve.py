"""``dashscope-sync serve`` says who connects (one line per connection, none with ``--quiet``) and replays."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._cli.main import EXIT_BAD_INPUT, EXIT_USAGE, main
from dashscope_sync.testing import LocalRealtimeServer

from ._capture import CaptureRelay
from ._proc import INTERRUPTIBLE

# Single mode (issue 18): the subject is the serve command, a child process;
# the sessions the tests open are only its probes (both modes of connecting,
# failing handshakes included, are tested in test_session.py and test_cli.py).


def serve_and_connect(*flags: str) -> str:
    """Run serve, connect once rightly, once with a bad key, once to a misspelt model; its stderr."""
    with subprocess.Popen(
        [sys.executable, "-m", "dashscope_sync", "serve", "--api-key", "sk-cli", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **INTERRUPTIBLE,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            url = proc.stdout.readline().split(": ", 1)[1].strip()
            with ds.Client("sk-cli", base_url=url).realtime.connect(
                model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
            ) as session:
                assert session.id
            with pytest.raises(ds.AuthenticationError):
                ds.Client("sk-wrong", base_url=url).realtime.connect(timeout=10)
            with pytest.raises(ds.APIError, match=r"Model\.NotExist"):
                ds.Client("sk-cli", base_url=url).realtime.connect(
                    model="qwen3-omni-flsh-realtime", timeout=10
                )
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
            return proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_serve_prints_one_line_per_connection() -> None:
    """Each connection gets one line: the session and model, or refused with the status or reason."""
    lines = [line for line in serve_and_connect().splitlines() if line.startswith("127.0.0.1:")]
    assert len(lines) == 3, lines
    accepted, bad_key, bad_model = lines
    assert "sess_" in accepted and "'qwen3-omni-flash-realtime'" in accepted
    assert "refused, HTTP 401 InvalidApiKey" in bad_key
    assert "refused, Model not exist: 'qwen3-omni-flsh-realtime'" in bad_model


def test_serve_quiet_prints_no_connection_lines() -> None:
    """With --quiet, serve prints nothing per connection."""
    err = serve_and_connect("--quiet")
    assert "127.0.0.1:" not in err
    assert "stopping" in err


def one_turn(url: str, api_key: str) -> str:
    """A program under test: one text turn in manual mode; the reply's text."""
    with ds.Client(api_key, base_url=url).realtime.connect(
        model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
    ) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        return session.respond(text="Replay me", timeout=30).text


def test_serve_replay(tmp_path: Path) -> None:
    """serve --replay answers with the recording: a program that follows it, one that does not."""
    with LocalRealtimeServer() as upstream, CaptureRelay(upstream, tmp_path) as relay:
        live = one_turn(relay.url, upstream.api_key or "")
        path = relay.wait_written()
    argv = ["serve", "--api-key", "sk-cli", "--replay", str(path), "--speed", "inf"]
    with subprocess.Popen(
        [sys.executable, "-m", "dashscope_sync", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **INTERRUPTIBLE,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            url = proc.stdout.readline().split(": ", 1)[1].strip()
            lines = [proc.stdout.readline() for _ in range(3)]
            assert "as fast as possible" in lines[2] and "qwen3-omni-flash-realtime" in lines[2]
            assert one_turn(url, "sk-cli") == live
            with ds.Client("sk-cli", base_url=url).realtime.connect(
                model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
            ):
                pass  # closes where the recording has its session.update
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "followed the recording to its end" in err
    assert "replay diverged at frame 1 (line 3 of" in err
    assert "expected the client's 'session.update', got the connection closed (1000)" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--speed", "2"], EXIT_USAGE, "argument --speed: goes with --replay"),
        (["--replay", "nowhere.jsonl"], EXIT_BAD_INPUT, "--replay: cannot read the recording"),
    ],
)
def test_serve_replay_refuses_before_listening(
    tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    """--speed without --replay, or a recording that cannot be read, fail before listening."""
    out, err = io.StringIO(), io.StringIO()
    assert main(["serve", *argv], out=out, err=err) == code
    assert message in err.getvalue()
    assert "realtime URL" not in out.getvalue()


def test_serve_replay_bad_speed() -> None:
    """--speed 0 is a usage error naming the option."""
    with pytest.raises(SystemExit) as info:
        main(["serve", "--replay", "x", "--speed", "0"], out=io.StringIO(), err=io.StringIO())
    assert info.value.code == EXIT_USAGE
