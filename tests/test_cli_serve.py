"""``dashscope-sync serve`` says who connects: one line per connection, none with ``--quiet``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import dashscope_sync as ds

from ._proc import INTERRUPTIBLE


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
