"""The dashscope-sync command, run in-process and as a real subprocess."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync import _cli
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

pytestmark = pytest.mark.timeout(60)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = _cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write_wav(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return path


def test_demo(tmp_path: Path) -> None:
    """demo holds a turn with the bundled server and writes the reply as WAV."""
    code, out, err = run("demo", "--output", str(tmp_path / "reply.wav"))
    assert code == 0, err
    assert "assistant: This is a simulated reply" in out
    assert "first text" in out and "first audio" in out and "total" in out
    assert "simulated" in err  # says plainly the server is a simulator
    reply = ds.load_wav(tmp_path / "reply.wav", sample_rate=24000)  # 24 kHz mono PCM16
    assert len(reply) // 2 > 24000 // 2  # over half a second of reply


def test_python_m_and_console_script(tmp_path: Path) -> None:
    """python -m dashscope_sync and the installed console script both run the demo."""
    script = Path(sys.executable).parent / "dashscope-sync"
    for command in ([sys.executable, "-m", "dashscope_sync"], [str(script)]):
        proc = subprocess.run(
            [*command, "demo", "--output", str(tmp_path / "r.wav")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "assistant:" in proc.stdout


class TestTalk:
    def test_turn_against_a_url(
        self, server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk sends the WAV (paced like a microphone) and the text, and saves the reply."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        wav = write_wav(tmp_path / "in.wav", speech_like_pcm16(0.3))
        code, out, err = run(
            "talk", str(wav), "--url", server.url, "--text", "and this text",
            "--voice", "Ethan", "--instructions", "be brief", "--output", str(tmp_path / "o.wav"),
        )  # fmt: skip
        assert code == 0, err
        assert "assistant:" in out
        update = next(f for f in server.received if f["type"] == "session.update")
        assert update["session"]["voice"] == "Ethan"
        create = server.received[-1]
        assert create["type"] == "response.create"
        assert create["response"]["instructions"] == "be brief"
        assert (tmp_path / "o.wav").exists()

    def test_missing_key(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """No DASHSCOPE_API_KEY exits with EXIT_NO_KEY and says what to set."""
        monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
        code, _, err = run("talk", str(tmp_path / "x.wav"))
        assert code == _cli.EXIT_NO_KEY
        assert "DASHSCOPE_API_KEY" in err

    def test_auth_failure(
        self, server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A refused key exits with EXIT_AUTH."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong")
        wav = write_wav(tmp_path / "in.wav", speech_like_pcm16(0.2))
        code, _, err = run("talk", str(wav), "--url", server.url, "--fast")
        assert code == _cli.EXIT_AUTH
        assert "InvalidApiKey" in err

    def test_bad_input_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file that is not audio exits with EXIT_BAD_INPUT and says what it found, on one line."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        bad = tmp_path / "in.wav"
        bad.write_bytes(b"fLaC" + bytes(64))
        monkeypatch.setitem(sys.modules, "soundfile", None)
        code, _, err = run("talk", str(bad))
        assert code == _cli.EXIT_BAD_INPUT
        assert "a FLAC file" in err and "soundfile" in err
        assert err.count("\n") == 1  # one line

    def test_any_wav_is_converted(
        self, server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk reads a 44.1 kHz WAV and sends it as 16 kHz (load_audio underneath)."""
        pytest.importorskip("soxr")
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        from dashscope_sync.testing import resample_pcm16

        wav = write_wav(
            tmp_path / "cd.wav", resample_pcm16(speech_like_pcm16(0.5), 16000, 44100), rate=44100
        )
        code, _, err = run(
            "talk", str(wav), "--url", server.url, "--fast", "--output", str(tmp_path / "o.wav")
        )
        assert code == 0, err
        sent = sum(
            len(f["audio"]) for f in server.received if f["type"] == "input_audio_buffer.append"
        )
        assert abs(sent * 3 // 4 - 16000) < 400  # base64 of 0.5 s at 16 kHz PCM16

    def test_mic_and_file_are_exclusive(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk with neither a file nor --mic (or both) is a usage error."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        assert run("talk")[0] == _cli.EXIT_BAD_INPUT
        assert run("talk", "x.wav", "--mic")[0] == _cli.EXIT_BAD_INPUT

    def test_network_failure(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unreachable server exits with EXIT_NETWORK."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        wav = write_wav(tmp_path / "in.wav", speech_like_pcm16(0.2))
        code, _, err = run("talk", str(wav), "--url", f"ws://127.0.0.1:{port}/", "--fast")
        assert code == _cli.EXIT_NETWORK
        assert "cannot connect" in err


def test_usage_error() -> None:
    """An unknown command is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as info:
        run("fly")
    assert info.value.code == _cli.EXIT_USAGE


def test_serve_until_ctrl_c() -> None:
    """serve prints its URL and key, serves a session, and stops cleanly on Ctrl-C."""
    with subprocess.Popen(
        [sys.executable, "-m", "dashscope_sync", "serve", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        serve_and_interrupt(proc)


def serve_and_interrupt(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split(": ", 1)[1].strip()
        assert proc.stdout.readline().startswith("HTTP base URL: http://127.0.0.1:")
        assert proc.stdout.readline().strip() == "API key: sk-cli"
        client = ds.Client("sk-cli", base_url=url)
        with client.realtime.connect(model="m") as session:
            assert session.id
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
