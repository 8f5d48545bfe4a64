"""Receive by pulling: one loop over ``session.events()`` that dispatches on type.

Shows the iterator style of receiving, and the individual steps of a turn
that ``respond()`` otherwise does for you: append the audio in 100 ms chunks
(as a microphone would deliver it), commit it as the user's turn, ask for a
response, then read events until ``response.done``. Every event since connect
is in the session's buffer, in order, each delivered once, so nothing that
arrived before the loop started is missed. ``isinstance`` checks on the typed
event classes pick out the interesting ones; a timeout bounds each wait.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/iterator_style.py [question.wav] [--output reply.wav]

or offline, against a simulated server started in this process:

    python examples/iterator_style.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator

import dashscope_sync as ds

CHUNK = 3200  # 100 ms of 16 kHz mono PCM16: the pace the service recommends

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
    parser.add_argument(
        "wav", nargs="?", default=str(ds.sample_wav_path()), help="16 kHz mono PCM16 WAV file"
    )
    parser.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="longest wait for each next event, in seconds"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)

    reply = bytearray()
    mid_line = False  # the reply's transcript is being printed on the current line
    try:
        pcm = load_input(args.wav)
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            session.update_session(
                ds.SessionUpdate(modalities=["text", "audio"], turn_detection=None)  # manual mode
            )

            # 1. The user's turn: audio in 100 ms chunks, then commit. The
            #    server does not acknowledge appends; it answers the commit
            #    with input_audio_buffer.committed (seen in the loop below).
            for start in range(0, len(pcm), CHUNK):
                session.append_audio(pcm[start : start + CHUNK])
            session.commit_audio()
            # 2. Ask for the reply. In manual mode nothing happens until we do.
            session.create_response()
            asked_at = time.monotonic()

            # 3. Read events until the reply is done. Each next event may take
            #    at most args.timeout seconds (ds.DashScopeTimeout otherwise).
            for event in session.events(timeout=args.timeout):
                elapsed = f"{time.monotonic() - asked_at:6.3f} s"
                if isinstance(event, (ds.SessionCreated, ds.SessionUpdated)):
                    print(f"[{event.type}] voice {event.session.voice}")
                elif isinstance(event, ds.InputAudioBufferCommitted):
                    print(f"[{event.type}] item {event.item_id}")
                elif isinstance(event, ds.ConversationItemInputAudioTranscriptionCompleted):
                    # The input transcript comes from a separate ASR model and
                    # may arrive before, during or after the reply.
                    if mid_line:
                        print()
                        mid_line = False
                    print(f"[you said] {event.transcript}")
                elif isinstance(event, ds.ResponseCreated):
                    print(f"[{event.type}] {elapsed} response {event.response.id}")
                elif isinstance(event, ds.ResponseAudioTranscriptDelta):
                    if not mid_line:
                        print("assistant: ", end="")
                        mid_line = True
                    print(event.delta, end="", flush=True)
                elif isinstance(event, ds.ResponseAudioDelta):
                    reply += event.delta  # 24 kHz mono PCM16, already decoded from base64
                elif isinstance(event, ds.ErrorEvent):
                    # The session goes on after an error event; this program stops.
                    print(f"\n[error] {event.error.code}: {event.error.message}", file=sys.stderr)
                    return 7
                elif isinstance(event, ds.ResponseDone):
                    if mid_line:
                        print()
                    print(f"[{event.type}] {elapsed} status {event.response.status}")
                    print(f"usage: {event.response.usage}")
                    if event.response.status != "completed":
                        return 1
                    break
                # Anything else (content parts, output items, audio done, and
                # ds.UnknownEvent for types newer than this library) is skipped.
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)

    with open(args.output, "wb") as file:
        file.write(ds.pcm16_to_wav(bytes(reply)))
    print(f"reply audio: {len(reply) / 2 / ds.OUTPUT_SAMPLE_RATE:.2f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
