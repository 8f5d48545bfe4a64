"""Speak an LLM's reply while it is still being written: text pieces in, audio out.

A conversation model streams its reply as text pieces (``iter_text()``);
``tts.speak(pieces)`` takes that iterator as it is: each piece is appended
the moment it arrives, the text-to-speech model starts speaking the first
sentence before the last piece exists, and the speech is committed after the
last piece, so its tail is spoken too. ``finish()`` ends the TTS session once
the last audio came.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/speak_llm_stream.py ["question"] [--output answer.wav]

or offline, against a simulated server started in this process (it plays both
models):

    python examples/speak_llm_stream.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator

import dashscope_sync as ds

#: The conversation model that writes the reply (text only).
LLM = "qwen3.5-omni-flash-realtime"
QUESTION = "In three sentences: why do voice assistants stream their answers?"

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION, help="what to ask the LLM")
    parser.add_argument("--llm", default=LLM, help="the conversation model (default %(default)s)")
    parser.add_argument("--tts", default=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, help="the TTS model")
    parser.add_argument("--voice", default="Cherry", help="the voice (default %(default)s)")
    parser.add_argument("--output", default="answer.wav", help="where to write the audio")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for each step")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)
    times: dict[str, float] = {}  # when the first and last piece, the first audio came

    try:
        with (
            open_client(args) as client,
            client.realtime.connect(model=args.llm) as llm,
            client.speech.connect(model=args.tts, voice=args.voice) as tts,
        ):
            llm.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
            llm.append_text(args.question)
            reply = llm.create_response()

            def pieces() -> Iterator[str]:
                # The LLM's text, piece by piece, echoed as it is handed to the TTS.
                for piece in reply.iter_text(timeout=args.timeout):
                    times.setdefault("first piece", time.monotonic())
                    print(piece, end="", flush=True)
                    yield piece
                times["last piece"] = time.monotonic()
                print()

            speech = tts.speak(pieces())  # returns at once: a thread appends the pieces
            for _chunk in speech.iter_audio(timeout=args.timeout):
                times.setdefault("first audio", time.monotonic())
            result = speech.wait(args.timeout)
            tts.finish(timeout=args.timeout)  # session.finish -> session.finished, then the close
    except FAILURES as exc:  # one line, and the exit code of the same failure
        if "first piece" in times and "last piece" not in times:
            print()  # end the half-written reply before the error line
        return fail(exc)

    result.save(args.output)  # 24 kHz mono PCM16 WAV
    start = times["first piece"]
    print(
        f"spoke {result.characters} characters ({result.duration:.2f} s of audio); "
        f"after the LLM's first piece: first audio {times['first audio'] - start:.3f} s, "
        f"last piece {times['last piece'] - start:.3f} s -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
