"""Receive with callbacks only: print the reply's transcript as it streams in.

Shows the callback style of receiving. Handlers registered with
``session.on(...)`` run on the session's own handler thread, one at a time,
in the order the events arrived; this thread (the main one) only sends, then
waits on a `threading.Event` that the ``response.done`` handler sets. As
nothing here pulls events, the session's event buffer is turned off
(``RealtimeConfig(max_buffered_events=0)``), so no memory is spent on it.

It also shows what happens when a handler raises: run with
``--break-handler`` and an extra audio handler fails on its first event. The
error is logged with its traceback, and raised as `ds.HandlerError` (chained
to the original exception) on this thread at its next call into the session;
here that is when the ``with`` block closes the session.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/callbacks_streaming.py [question.wav] [--output reply.wav]

or offline, against a simulated server started in this process:

    python examples/callbacks_streaming.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
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
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the reply")
    parser.add_argument(
        "--break-handler", action="store_true", help="make a handler raise, to see what happens"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)

    # State the handlers share with this thread. Handlers run one at a time on
    # the handler thread, so they need no lock among themselves; this thread
    # reads `reply` and `outcome` only after `done` is set, which orders the
    # handler's writes before our reads.
    reply = bytearray()
    outcome: list[str] = []  # the final status, or an error message
    done = threading.Event()

    try:
        pcm = load_input(args.wav)
        config = ds.RealtimeConfig(model=args.model, max_buffered_events=0)  # callbacks only
        with open_client(args) as client, client.realtime.connect(config) as session:
            session.update_session(
                ds.SessionUpdate(modalities=["text", "audio"], turn_detection=None)
            )

            # Register handlers before sending, so no event can come first.
            # By class, the handler's argument is typed (ResponseAudioTranscriptDelta
            # here); a wire type string such as "response.audio_transcript.delta"
            # works too. The returned HandlerHandle's remove() unsubscribes.
            session.on(
                ds.ResponseAudioTranscriptDelta,
                lambda event: print(event.delta, end="", flush=True),
            )

            # As a decorator, on() returns the function unchanged.
            @session.on(ds.ResponseAudioDelta)
            def collect_audio(event: ds.ResponseAudioDelta) -> None:
                reply.extend(event.delta)  # 24 kHz mono PCM16, already decoded from base64

            if args.break_handler:

                def broken(event: ds.ResponseAudioDelta) -> None:
                    handle.remove()  # unsubscribe, so it fails once only
                    # Logged at once with its traceback, then raised on the
                    # main thread as ds.HandlerError at its next call into the
                    # session. The other handlers keep running: the turn ends.
                    raise RuntimeError("this handler is broken on purpose (--break-handler)")

                handle = session.on(ds.ResponseAudioDelta, broken)

            @session.on(ds.ResponseDone)
            def finished(event: ds.ResponseDone) -> None:
                outcome.append(event.response.status or "completed")
                done.set()

            @session.on(ds.ErrorEvent)
            def failed(event: ds.ErrorEvent) -> None:
                # The server refused something (e.g. an empty commit): stop waiting.
                outcome.append(f"server error {event.error.code}: {event.error.message}")
                done.set()

            # Handlers must not block: a waiting call from inside one (such as
            # update_session() or Response.wait()) raises ds.UsageError instead
            # of deadlocking. Sending (append_text, cancel_response...) is fine.

            for start in range(0, len(pcm), CHUNK):
                session.append_audio(pcm[start : start + CHUNK])
            session.commit_audio()
            print("assistant: ", end="", flush=True)
            session.create_response()  # the handle it returns is not needed here

            if not done.wait(args.timeout):
                print(f"\nerror: no reply within {args.timeout} s", file=sys.stderr)
                return 6
            print()
            # Leaving the block closes the session: handlers finish the events
            # already received, the threads are joined, and a handler error
            # not yet raised is raised here, as ds.HandlerError.
    except ds.HandlerError as exc:
        print(f"\na handler failed: {exc}", file=sys.stderr)
        print(f"  original exception: {exc.__cause__!r}", file=sys.stderr)
        return 1
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)

    if outcome[0] != "completed":
        print(f"the response did not complete: {outcome[0]}", file=sys.stderr)
        return 1
    with open(args.output, "wb") as file:
        file.write(ds.pcm16_to_wav(bytes(reply)))  # 24 kHz by default, the reply's rate
    print(f"reply audio: {len(reply) / 2 / ds.OUTPUT_SAMPLE_RATE:.2f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
