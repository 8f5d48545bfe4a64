"""The ``dashscope-sync`` command (also ``python -m dashscope_sync``).

Commands:
    demo    a voice turn with the bundled local server: no network, no key
    talk    a voice turn with the real service (or any URL)
    serve   run the local server until Ctrl-C
    token   print a temporary key as JSON
    translate  a LiveTranslate session from a WAV file (_cli_translate.py)

Exit codes are distinct so scripts can branch on them (see ``EXIT_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from ._audio import load_wav, sample_wav_path
from ._cli_translate import add_translate_parser
from ._client import API_KEY_ENV, Client
from ._config import NOT_GIVEN, SessionUpdate
from ._constants import (
    INPUT_SAMPLE_RATE,
    MODEL_QWEN3_OMNI_FLASH_REALTIME,
    VOICE_CHERRY,
)
from ._errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    DashScopeError,
    DashScopeTimeout,
    TransportError,
)
from ._events import ConversationItemInputAudioTranscriptionCompleted
from ._families import ModelFamily

__all__ = ["main"]

EXIT_OK = 0
#: An unexpected failure, or a response that did not complete.
EXIT_ERROR = 1
#: Bad command-line usage (argparse's code).
EXIT_USAGE = 2
#: No API key in the environment.
EXIT_NO_KEY = 3
#: The service refused the key.
EXIT_AUTH = 4
#: The input file cannot be used.
EXIT_BAD_INPUT = 5
#: The network failed or timed out.
EXIT_NETWORK = 6
#: The service refused the request otherwise.
EXIT_API = 7
#: Interrupted with Ctrl-C.
EXIT_INTERRUPTED = 130

CHUNK = INPUT_SAMPLE_RATE * 2 // 10  # 100 ms of 16 kHz PCM16: the pace the service wants


class _BadInput(Exception):
    """The user's input file or arguments cannot be used."""


def _progress(out: TextIO, text: str) -> None:
    if out.isatty():
        out.write(f"\r{text}")
        out.flush()


def _voice_turn(
    client: Client,
    *,
    model: str,
    pcm: bytes,
    text: str | None,
    voice: str | None,
    instructions: str | None,
    output: Path,
    realtime: bool,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    """Upload, ask, stream the reply's text, save its audio, print timings."""
    started = time.monotonic()
    with client.realtime.connect(model=model) as session:
        print(f"connected: session {session.id} ({time.monotonic() - started:.3f} s)", file=err)
        session.update_session(
            SessionUpdate(
                modalities=["text", "audio"],
                turn_detection=None,
                # No voice given: the model family's own default voice.
                voice=voice or NOT_GIVEN,
            )
        )
        # LiveTranslate answers by itself: follow it from before the audio.
        translating = session.family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38)
        follower = session.next_response() if translating else None
        heard: list[str] = []
        session.on(
            ConversationItemInputAudioTranscriptionCompleted,
            lambda event: heard.append(event.transcript),
        )
        seconds = len(pcm) / 2 / INPUT_SAMPLE_RATE
        upload_started = time.monotonic()
        for start in range(0, len(pcm), CHUNK):
            if realtime:
                # Pace like a microphone: this chunk is due once the audio
                # before it has "played".
                due = upload_started + start / 2 / INPUT_SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            session.append_audio(pcm[start : start + CHUNK])
            sent = min(len(pcm), start + CHUNK) / 2 / INPUT_SAMPLE_RATE
            _progress(err, f"uploading {sent:5.1f} / {seconds:.1f} s")
        _progress(err, "\n")
        if text:
            session.append_text(text)
        session.commit_audio()
        response = follower or session.create_response(instructions=instructions)
        print("assistant: ", end="", file=out, flush=True)
        for chunk in response.iter_text(timeout=timeout):
            print(chunk, end="", file=out, flush=True)
        print(file=out)
        result = response.wait(timeout)
    output.write_bytes(result.to_wav_bytes())
    if heard:
        print(f"you said: {heard[0]}", file=out)

    def seconds_or_dash(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    print(
        f"reply: {result.audio_seconds:.2f} s of audio -> {output}\n"
        f"first text {seconds_or_dash(result.first_text_delay)}, "
        f"first audio {seconds_or_dash(result.first_audio_delay)}, "
        f"total {seconds_or_dash(result.total_time)}",
        file=out,
    )
    return EXIT_OK


def _local_server() -> type:
    try:
        from .testing import LocalRealtimeServer
    except ImportError as exc:  # websockets is an optional extra
        raise _BadInput(
            "the local server needs the 'testing' extra: pip install 'dashscope-sync[testing]'"
        ) from exc
    return LocalRealtimeServer


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    pcm = load_wav(args.input)
    with _local_server()() as server:
        print(f"local server at {server.url} (replies are simulated)", file=err)
        client = Client(server.api_key, base_url=server.url)
        return _voice_turn(
            client,
            model=MODEL_QWEN3_OMNI_FLASH_REALTIME,
            pcm=pcm,
            text=None,
            voice=VOICE_CHERRY,
            instructions=None,
            output=Path(args.output),
            realtime=False,
            timeout=args.timeout,
            out=out,
            err=err,
        )


def _api_key() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise _NoKey
    return key


class _NoKey(Exception):
    """No API key in the environment."""


def _cmd_talk(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    client = Client(_api_key(), base_url=args.url, workspace=args.workspace, region=args.region)
    pcm = load_wav(args.input)
    return _voice_turn(
        client,
        model=args.model,
        pcm=pcm,
        text=args.text,
        voice=args.voice,
        instructions=args.instructions,
        output=Path(args.output),
        realtime=not args.fast,
        timeout=args.timeout,
        out=out,
        err=err,
    )


def _cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    server = _local_server()(host=args.host, port=args.port, api_key=args.api_key)
    with server:
        print(f"realtime URL: {server.url}", file=out)
        print(f"HTTP base URL: {server.http_base_url}", file=out)
        print(f"API key: {server.api_key}", file=out)
        print("Ctrl-C to stop", file=err, flush=True)
        stop = threading.Event()  # set by nothing: Ctrl-C ends the wait
        try:
            stop.wait()
        except KeyboardInterrupt:
            print("stopping", file=err)
    return EXIT_OK


def _cmd_token(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    client = Client(_api_key(), workspace=args.workspace, http_base_url=args.http_base_url)
    key = client.tokens.create(args.expire)
    print(json.dumps({"token": key.token, "expires_at": key.expires_at}), file=out)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dashscope-sync",
        description="Talk to DashScope's Qwen-Omni realtime API, or to a local simulator.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="a voice turn with the bundled local server (no network, no key)"
    )
    demo.add_argument("--input", default=str(sample_wav_path()), help="16 kHz mono PCM16 WAV")
    demo.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    demo.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply")
    demo.set_defaults(run=_cmd_demo)

    talk = commands.add_parser("talk", help=f"a voice turn with the real service ({API_KEY_ENV})")
    talk.add_argument("input", help="16 kHz mono PCM16 WAV file to send")
    talk.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    talk.add_argument("--text", help="a text message to send with the audio")
    talk.add_argument("--voice", default=None, help="reply voice (default: the model's own)")
    talk.add_argument("--model", default=MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name")
    talk.add_argument("--instructions", help="instructions for this reply")
    talk.add_argument("--url", default=None, help="realtime WebSocket URL (default: resolved)")
    talk.add_argument("--workspace", help="workspace id (default: DASHSCOPE_WORKSPACE)")
    talk.add_argument("--region", help="region id (default: DASHSCOPE_REGION, cn-beijing)")
    talk.add_argument("--fast", action="store_true", help="upload faster than real time")
    talk.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the reply")
    talk.set_defaults(run=_cmd_talk)

    serve = commands.add_parser("serve", help="run the local server until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--api-key", default="sk-local-test", help="the key the server accepts")
    serve.set_defaults(run=_cmd_serve)

    token = commands.add_parser("token", help=f"print a temporary key as JSON ({API_KEY_ENV})")
    token.add_argument("--expire", type=int, default=60, help="lifetime in seconds, 1 to 1800")
    token.add_argument("--workspace", help="workspace id")
    token.add_argument("--http-base-url", default=None, help="HTTP API host")
    token.set_defaults(run=_cmd_token)

    add_translate_parser(commands, _api_key)
    return parser


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.run

    def fail(code: int, message: str) -> int:
        print(f"dashscope-sync: error: {message}", file=err)
        return code

    try:
        return run(args, out, err)
    except _NoKey:
        return fail(EXIT_NO_KEY, f"no API key: set the {API_KEY_ENV} environment variable")
    except _BadInput as exc:
        return fail(EXIT_BAD_INPUT, str(exc))
    except AuthenticationError as exc:
        return fail(EXIT_AUTH, f"the service refused the API key: {exc}")
    except ConfigError as exc:
        return fail(EXIT_BAD_INPUT, str(exc))
    except (TransportError, DashScopeTimeout) as exc:
        return fail(EXIT_NETWORK, str(exc))
    except APIError as exc:
        return fail(EXIT_API, str(exc))
    except DashScopeError as exc:
        return fail(EXIT_ERROR, str(exc))
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
