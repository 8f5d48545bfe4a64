"""The dashscope-sync command, run in-process and as a real subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from ._proc import INTERRUPTIBLE
from .conftest import need

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# run the command in-process and open sessions; the others run it as a child
# process (no test reactor reaches it) or open no session.
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


@pytest.mark.both_modes
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


@pytest.mark.both_modes
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

    def test_prints_the_latency_summary(
        self, server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk ends with the session's latency summary on stderr, one line per figure."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        wav = write_wav(tmp_path / "in.wav", speech_like_pcm16(0.3))
        code, out, err = run(
            "talk", str(wav), "--url", server.url, "--fast", "--output", str(tmp_path / "o.wav")
        )
        assert code == 0, err
        lines = err.splitlines()
        start = lines.index("latency over 1 response:")
        figures = [line.split(":")[0].strip() for line in lines[start + 1 :]]
        assert figures == [
            "end of speech to first audio",
            "first audio delay",
            "first audible delay",
            "first text delay",
            "total time",
        ]
        assert all(line.endswith("(n=1)") for line in lines[start + 1 :])
        assert "latency over" not in out

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

    @pytest.mark.parametrize("command", ["talk", "token"])
    def test_refused_key_says_so_once(
        self, server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch, command: str
    ) -> None:
        """A refused key is one sentence naming the variable and the service's reason, said once."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong")
        if command == "talk":
            argv = ["talk", SAMPLE, "--url", server.url, "--fast"]
        else:
            argv = ["token", "--http-base-url", server.http_base_url]
        code, _, err = run(*argv)
        assert code == _cli.EXIT_AUTH
        assert err.startswith(
            "dashscope-sync: error: the key in DASHSCOPE_API_KEY was not accepted: "
        )
        assert "InvalidApiKey: Invalid API-key provided. (HTTP 401" in err
        assert "refused" not in err

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
        need("soxr")
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

    def test_resampling_without_the_extra_exits_8(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 44.1 kHz WAV without the [audio] extra exits 8 (a missing extra), naming both pip forms."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        monkeypatch.setitem(sys.modules, "soxr", None)
        wav = write_wav(tmp_path / "cd.wav", bytes(4410 * 2), rate=44100)
        code, _, err = run("talk", str(wav), "--output", str(tmp_path / "o.wav"))
        assert code == _cli.EXIT_NOT_INSTALLED, err
        assert "44100 Hz" in err and "[audio] extra" in err
        assert "pip install 'dashscope-sync[audio]'" in err and "pip install -e '.[audio]'" in err

    def test_mic_and_file_are_exclusive(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk with neither a file nor --mic (or both) is a usage error."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
        assert run("talk")[0] == _cli.EXIT_USAGE
        assert run("talk", "x.wav", "--mic")[0] == _cli.EXIT_USAGE

    @pytest.mark.parametrize(
        ("hidden", "argv", "extra"),
        [
            ("sounddevice", [], "[audio]"),
            ("pywebrtc_audio", ["--echo", "aec"], "[aec]"),
        ],
    )
    def test_mic_without_its_extra_exits_8_before_connecting(
        self,
        server: LocalRealtimeServer,
        monkeypatch: pytest.MonkeyPatch,
        hidden: str,
        argv: list[str],
        extra: str,
    ) -> None:
        """talk --mic without the extra it needs exits 8 naming both pip forms, before connecting."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        monkeypatch.setitem(sys.modules, hidden, None)
        code, _, err = run("talk", "--mic", *argv, "--url", server.url)
        assert code == _cli.EXIT_NOT_INSTALLED, err
        assert f"pip install 'dashscope-sync{extra}'" in err
        assert f"pip install -e '.{extra}'" in err
        assert server.handshakes == []

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


@pytest.mark.both_modes
def test_refused_reply_without_transcript_is_reported_at_once(
    server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused response.create ends the turn at once, though no transcript ever comes."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
    # Commit without the transcript, then refuse the response: nothing else will arrive.
    server.on_client_event(
        "input_audio_buffer.commit", [{"type": "input_audio_buffer.committed", "item_id": "i1"}]
    )
    server.inject_error(
        "response.create", {"type": "invalid_request_error", "code": "bad", "message": "no"}
    )
    wav = write_wav(tmp_path / "in.wav", speech_like_pcm16(0.2))
    # Waiting for a transcript until --timeout would outlast this test's own timeout.
    code, out, err = run(
        "talk", str(wav), "--url", server.url, "--fast", "--timeout", "600",
        "--output", str(tmp_path / "o.wav"),
    )  # fmt: skip
    assert code == _cli.EXIT_API, err
    assert "bad: no" in err and "you said" not in out


def test_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a command is one line and exit 1; DASHSCOPE_SYNC_DEBUG=1 adds the traceback."""

    def broken(*_: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_cli, "_cmd_token", broken)
    monkeypatch.delenv("DASHSCOPE_SYNC_DEBUG", raising=False)
    code, _, err = run("token")
    assert code == _cli.EXIT_ERROR
    assert err == (
        "dashscope-sync: error: unexpected RuntimeError: a bug "
        "(set DASHSCOPE_SYNC_DEBUG=1 for details)\n"
    )
    monkeypatch.setenv("DASHSCOPE_SYNC_DEBUG", "1")
    code, _, err = run("token")
    assert code == _cli.EXIT_ERROR and "Traceback" in err


def test_unknown_option_shows_the_commands_usage() -> None:
    """talk --bogus is refused with talk's usage line, not the top-level one."""
    proc = cli("talk", "--bogus")
    assert proc.returncode == _cli.EXIT_USAGE
    usage, error = proc.stderr.strip().splitlines()[0], proc.stderr.strip().splitlines()[-1]
    assert usage.startswith("usage: dashscope-sync talk "), proc.stderr
    assert error == "dashscope-sync talk: error: unrecognized arguments: --bogus"


def test_usage_error() -> None:
    """An unknown command is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as info:
        run("fly")
    assert info.value.code == _cli.EXIT_USAGE


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_until_stopped(signum: int) -> None:
    """serve prints its URL and key, serves a session, and stops cleanly on Ctrl-C or SIGTERM."""
    with subprocess.Popen(
        [sys.executable, "-m", "dashscope_sync", "serve", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **INTERRUPTIBLE,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            url = proc.stdout.readline().split(": ", 1)[1].strip()
            assert proc.stdout.readline().startswith("HTTP base URL: http://127.0.0.1:")
            assert proc.stdout.readline().strip() == "API key: sk-cli"
            client = ds.Client("sk-cli", base_url=url)
            with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
                assert session.id
            proc.send_signal(signum)
            assert proc.wait(timeout=20) == 0
            assert "stopping" in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# -- As a user runs it: a real process, its exit code and what it prints ---------------

# Runs the command with the websockets package hidden (no 'testing' extra).
HIDE_WEBSOCKETS = """
import sys

class HideWebsockets:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "websockets":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideWebsockets())
from dashscope_sync._cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def cli(
    *argv: str, key: str | None = "k", cwd: Path | None = None, hide_websockets: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dashscope_sync ARGV`` with DASHSCOPE_API_KEY set to ``key``."""
    env = {k: v for k, v in os.environ.items() if k != "DASHSCOPE_API_KEY"}
    if key is not None:
        env["DASHSCOPE_API_KEY"] = key
    command = ["-c", HIDE_WEBSOCKETS] if hide_websockets else ["-m", "dashscope_sync"]
    return subprocess.run(
        [sys.executable, *command, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=cwd,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command printed: one line on stderr, never a traceback."""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("dashscope-sync: error: ")
    return lines[0]


SAMPLE = str(ds.sample_wav_path())


class TestFiles:
    """Every OSError on input, output or a port is one line with the right exit code."""

    @pytest.mark.parametrize("output", ["no/such/dir/x.wav", "."])
    def test_unwritable_output_is_refused_before_connecting(
        self, server: LocalRealtimeServer, tmp_path: Path, output: str
    ) -> None:
        """--output in a missing directory, or naming a directory, exits 2 before any connection."""
        proc = cli(
            "talk", SAMPLE, "--url", server.url, "--fast", "--output", output,
            key=server.api_key, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == _cli.EXIT_USAGE
        assert "argument --output" in one_line_error(proc)
        assert server.handshakes == []  # nothing was paid for

    def test_output_check_leaves_no_file(self, tmp_path: Path) -> None:
        """Checking --output creates no file when the turn then fails."""
        proc = cli("talk", str(tmp_path / "missing.wav"), "--output", "out.wav", cwd=tmp_path)
        assert proc.returncode == _cli.EXIT_BAD_INPUT
        assert not (tmp_path / "out.wav").exists()

    @pytest.mark.parametrize("command", ["talk", "demo"])
    def test_directory_as_input(self, tmp_path: Path, command: str) -> None:
        """A directory given as the input WAV exits 5 with one line saying so."""
        argv = (
            [command, str(tmp_path)] if command == "talk" else [command, "--input", str(tmp_path)]
        )
        proc = cli(*argv, "--output", str(tmp_path / "r.wav"))
        assert proc.returncode == _cli.EXIT_BAD_INPUT
        assert "is a directory" in one_line_error(proc)

    def test_port_in_use(self) -> None:
        """serve --port N with N taken exits 2 naming --port."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = cli("serve", "--port", str(port))
        assert proc.returncode == _cli.EXIT_USAGE
        line = one_line_error(proc)
        assert "argument --port" in line and "in use" in line


class TestUsage:
    """Usage errors exit 2 and name the option, not the Python argument."""

    @pytest.mark.parametrize(
        ("argv", "flag"),
        [
            (["talk", SAMPLE, "--timeout", "0"], "--timeout"),
            (["talk", SAMPLE, "--timeout", "-1"], "--timeout"),
            (["talk", SAMPLE, "--timeout", "abc"], "--timeout"),
            (["demo", "--timeout", "nan"], "--timeout"),
            (["talk", SAMPLE, "--url", "foo"], "--url"),
            (["talk", SAMPLE, "--url", "http://example.com/"], "--url"),
            (["talk", SAMPLE, "--model", ""], "--model"),
            (["token", "--expire", "0"], "--expire"),
            (["token", "--expire", "1801"], "--expire"),
            (["token", "--http-base-url", "ws://x"], "--http-base-url"),
            (["serve", "--port", "70000"], "--port"),
            (["serve", "--api-key", "a b"], "--api-key"),
            (["talk", SAMPLE, "--workspace", "a b"], "--workspace"),
            (["talk", SAMPLE, "--region", "mars"], "--region"),
            (["translate", SAMPLE, "--to", "en", "--region", "mars"], "--region"),
            (["token", "--workspace", ""], "--workspace"),
        ],
    )
    def test_bad_option(self, argv: list[str], flag: str) -> None:
        """A bad option value exits 2 with a message that names the option."""
        proc = cli(*argv)
        assert proc.returncode == _cli.EXIT_USAGE
        assert "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert f"error: argument {flag}: " in last
        assert "expire_in_seconds" not in last and "base_url" not in last
        assert "error: argument workspace" not in last

    def test_malformed_key(self) -> None:
        """A DASHSCOPE_API_KEY that cannot be sent exits 3 naming the variable."""
        proc = cli("token", key="sk with spaces")
        assert proc.returncode == _cli.EXIT_NO_KEY
        assert "DASHSCOPE_API_KEY must be" in one_line_error(proc)

    def test_version(self) -> None:
        """--version prints the package version."""
        proc = cli("--version")
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"dashscope-sync {ds.__version__}"

    @pytest.mark.parametrize("command", ["demo", "talk", "serve", "token"])
    def test_help_has_description_and_example(self, command: str) -> None:
        """Every subcommand's --help has a description and an example of the command."""
        proc = cli(command, "--help")
        assert proc.returncode == 0
        text = proc.stdout
        description = text.split("\n\n")[1]  # the paragraph after the usage
        assert description.splitlines()[0] not in ("positional arguments:", "options:")
        assert len(description.split()) > 10
        examples = text.split("examples:\n", 1)[1]
        assert f"dashscope-sync {command}" in examples
        assert "exit codes:" in text

    def test_missing_extra_says_what_to_install(self, tmp_path: Path) -> None:
        """demo without the 'testing' extra exits 8 and names the pip install that fixes it."""
        proc = cli("demo", "--output", str(tmp_path / "r.wav"), hide_websockets=True)
        assert proc.returncode == _cli.EXIT_NOT_INSTALLED
        line = one_line_error(proc)
        assert "pip install 'dashscope-sync[testing]'" in line
        assert "pip install -e '.[testing]'" in line  # what works from a checkout


def test_demo_prints_what_was_heard_before_the_reply(tmp_path: Path) -> None:
    """In the demo, "you said" comes before the assistant's reply, in conversation order."""
    proc = cli("demo", "--output", str(tmp_path / "r.wav"))
    assert proc.returncode == 0, proc.stderr
    heard = proc.stdout.index("you said: [simulated transcript")
    assert heard < proc.stdout.index("assistant: This is a simulated reply")


@pytest.mark.parametrize("api_key", ["sk-paste", ""])  # "": the server takes any key
def test_serve_prints_commands_that_work(tmp_path: Path, api_key: str) -> None:
    """serve prints talk and token commands that run as pasted into a shell."""
    with subprocess.Popen(
        [sys.executable, "-m", "dashscope_sync", "serve", "--api-key", api_key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **INTERRUPTIBLE,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(6)]
            commands = [line.strip() for line in lines if line.startswith("  ")]
            assert [c.split()[1:3] for c in commands] == [
                ["dashscope-sync", "talk"],
                ["dashscope-sync", "token"],
            ]
            # The console script lives next to this interpreter.
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            env = {k: v for k, v in os.environ.items() if k != "DASHSCOPE_API_KEY"}
            talk, token = (
                subprocess.run(
                    command, shell=True, capture_output=True, text=True, timeout=60,
                    check=False, cwd=tmp_path, env={**env, "PATH": path},
                )
                for command in commands
            )  # fmt: skip
            assert talk.returncode == 0, talk.stderr
            assert "assistant: This is a simulated reply" in talk.stdout
            assert token.returncode == 0, token.stderr
            assert json.loads(token.stdout)["token"].startswith("st-")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


#: A gateway's error page as nginx writes it: ten lines of markup.
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n" + "<!-- padding -->\r\n" * 3
)


class TestErrorText:
    """What a failed command says: one line a person can act on, no library internals."""

    @pytest.mark.parametrize("command", ["talk", "token"])
    def test_html_error_page_is_one_line_with_status_and_title(
        self, server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch, command: str
    ) -> None:
        """A gateway's HTML error page is one line with the status and the page's title."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        if command == "talk":
            server.reject_next_handshakes(502, NGINX_502, content_type="text/html")
            argv = ["talk", SAMPLE, "--url", server.url, "--fast"]
        else:
            server.reject_next_http(502, NGINX_502, content_type="text/html")
            argv = ["token", "--http-base-url", server.http_base_url]
        code, _, err = run(*argv)
        assert code == _cli.EXIT_API, err
        assert err.count("\n") == 1, err
        assert "502" in err and "'502 Bad Gateway'" in err
        assert "<" not in err and "nginx" not in err

    def test_refused_token_connection_says_what_the_socket_said(self) -> None:
        """token against a closed port says 'cannot connect ...: Connection refused', not urllib3's text."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = cli("token", "--http-base-url", f"http://127.0.0.1:{port}")
        assert proc.returncode == _cli.EXIT_NETWORK
        line = one_line_error(proc)
        assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in line
        for internal in ("HTTPConnection", "Max retries", "NewConnectionError", "urllib3"):
            assert internal not in line


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers anything."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


class TestWholeCommandTimeout:
    """--timeout bounds the whole command: connecting, the upload and the wait together."""

    def test_talk_timeout_bounds_the_connect(self, silent_port: int) -> None:
        """talk --timeout 0.5 gives up on a server that never answers long before the 10 s connect default."""
        started = time.monotonic()
        proc = cli("talk", SAMPLE, "--url", f"ws://127.0.0.1:{silent_port}/", "--fast",
                   "--timeout", "0.5")  # fmt: skip
        elapsed = time.monotonic() - started
        assert proc.returncode == _cli.EXIT_NETWORK
        line = one_line_error(proc)
        assert "(--timeout) connecting" in line, line
        assert elapsed < 8  # the library's connect default alone is 10 s

    def test_token_has_a_timeout(self, silent_port: int) -> None:
        """token --timeout 0.5 gives up on a server that never answers, with the network exit code."""
        proc = cli("token", "--http-base-url", f"http://127.0.0.1:{silent_port}",
                   "--timeout", "0.5")  # fmt: skip
        assert proc.returncode == _cli.EXIT_NETWORK, proc.stderr
        assert "timed out after 0.5 s" in one_line_error(proc)

    @pytest.mark.both_modes
    def test_waiting_for_the_reply_names_the_option_not_an_internal(
        self, server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A reply that never comes ends at --timeout with a message naming the option and the step."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", server.api_key or "")
        server.on_client_event("response.create", [])  # the reply never starts
        code, _, err = run(
            "talk", SAMPLE, "--url", server.url, "--fast", "--timeout", "1",
            "--output", str(tmp_path / "o.wav"),
        )  # fmt: skip
        assert code == _cli.EXIT_NETWORK, err
        assert "timed out after 1 s (--timeout) waiting for the reply" in err
        assert "Response." not in err and "iter_text" not in err
