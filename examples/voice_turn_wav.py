"""One voice turn from a WAV file: send the question, save the spoken answer.

Shows the shortest whole-turn code path: open a session, switch it to manual
turn-taking (``turn_detection=None``: we say when the user is done), and call
``session.respond(pcm)``, which appends the audio in 100 ms chunks, commits it,
asks for a response and waits for it. The `ResponseResult` it returns holds the
reply's text, its 24 kHz audio (written here to a WAV file), the token usage
and the timings.

The input must be 16 kHz mono 16-bit PCM WAV; the default is a question
bundled with the package ("Hello! What is the weather like in Hangzhou today?").

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/voice_turn_wav.py [question.wav] [--output reply.wav]

or offline, against a simulated server started in this process:

    python examples/voice_turn_wav.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

import dashscope_sync as ds

# Where to connect. This block is the same in every example: by default the real
# service (API key from DASHSCOPE_API_KEY); with --local, a simulated server in
# this process (no key, no network; needs the 'testing' extra).


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local", action="store_true", help="use a simulated server in this process (no key)"
    )
    parser.add_argument(
        "--url", default=None, help="realtime endpoint (default: from the workspace and region)"
    )
    parser.add_argument("--workspace", help="workspace id (default: DASHSCOPE_WORKSPACE)")
    parser.add_argument(
        "--region", help="region id, e.g. ap-southeast-1 (default: DASHSCOPE_REGION, cn-beijing)"
    )


@contextlib.contextmanager
def open_client(args: argparse.Namespace) -> Iterator[ds.Client]:
    """Yield a client for the real service, or for a local simulated server (--local)."""
    if not args.local:
        if not os.environ.get(ds.API_KEY_ENV, "").strip():
            sys.exit(fail(ds.ConfigError(f"no API key: set {ds.API_KEY_ENV}"), 3))
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


# Failing. This block is the same in every example too: one line on stderr and
# the exit code the dashscope-sync command gives for the same failure (2 usage,
# 3 no key, 4 key refused, 5 bad input file, 6 network or timeout, 7 other
# refusal, 8 missing extra, 130 Ctrl-C, 1 anything else).

#: What main() catches: every library error, files, a missing extra, Ctrl-C.
FAILURES = (ds.DashScopeError, OSError, ImportError, KeyboardInterrupt)
EXIT_CODES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int], ...] = (
    (KeyboardInterrupt, 130),
    (ds.AuthenticationError, 4),
    (ds.APIError, 7),
    ((ds.TransportError, ds.DashScopeTimeout), 6),
    (ImportError, 8),  # --local needs the 'testing' extra
    ((ds.ConfigError, OSError), 2),
)


def fail(exc: BaseException, code: int | None = None) -> int:
    """Print ``exc`` as one line on stderr; return ``code``, else the command's code for it."""
    print(f"error: {' '.join(str(exc).split()) or 'interrupted'}", file=sys.stderr)
    return code if code is not None else next((c for t, c in EXIT_CODES if isinstance(exc, t)), 1)


def check_output(path: str) -> None:
    """Exit 2 unless ``path`` can be written; called before connecting, as a turn costs money."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        sys.exit(fail(OSError(f"--output {path}: cannot write a file there"), 2))


def load_input(path: str) -> bytes:
    """The question's audio (16 kHz mono PCM16 WAV), or exit 5 saying what is wrong with it."""
    try:
        return ds.load_wav(path)
    except ds.ConfigError as exc:  # with a conversion hint (ffmpeg, sox) for a wrong format
        sys.exit(fail(exc, 5))


def seconds(value: float | None) -> str:
    """A delay for humans: '0.412 s', or '-' when it never happened."""
    return "-" if value is None else f"{value:.3f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "wav", nargs="?", default=str(ds.sample_wav_path()), help="16 kHz mono PCM16 WAV file"
    )
    parser.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name")
    parser.add_argument("--voice", default=ds.VOICE_CHERRY, help="the reply's voice")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the turn")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)

    try:
        # Check the file before connecting: load_wav raises ConfigError with a
        # conversion hint (ffmpeg/sox) if it is not 16 kHz mono PCM16.
        pcm = load_input(args.wav)
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            print(f"connected: session {session.id} ({session.model})")
            # update_session waits for session.updated, so a rejected field
            # raises here (APIError) instead of failing the turn later.
            session.update_session(
                ds.SessionUpdate(
                    modalities=["text", "audio"],  # a spoken reply plus its transcript
                    voice=args.voice,
                    turn_detection=None,  # manual mode: respond() commits the turn itself
                )
            )
            print(f"sending {len(pcm) / 2 / ds.INPUT_SAMPLE_RATE:.2f} s of audio from {args.wav}")
            result = session.respond(pcm, timeout=args.timeout)
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)

    result.save_wav(args.output)  # 24 kHz mono PCM16 WAV
    print(f"assistant: {result.text}")
    print(f"reply audio: {result.audio_seconds:.2f} s -> {args.output}")
    print(f"usage: {result.usage}")
    print(
        f"timings: first text {seconds(result.first_text_delay)}, "
        f"first audio {seconds(result.first_audio_delay)}, total {seconds(result.total_time)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
