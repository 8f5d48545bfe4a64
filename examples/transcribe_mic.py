"""Speech recognition from the microphone: live captions until Ctrl-C.

``session.attach(microphone=ds.Microphone())`` streams the microphone into a
Qwen-ASR-Realtime session (server VAD ends each utterance); the caption line
shows ``text`` + ``stash`` in place as it changes and each final transcript
stays on a line of its own. Ctrl-C finishes the session: the last utterance
is transcribed before ``session.finished``. Needs the [audio] extra.

    python examples/transcribe_mic.py [--language zh]   # the real service (DASHSCOPE_API_KEY)
    python examples/transcribe_mic.py --local            # simulated server; the bundled
                                                          # question stands in for the microphone
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", default=None, help="the spoken language (default: detect)")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_ASR_FLASH_REALTIME, help="model")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed to finish")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    live = sys.stdout.isatty()  # captions in place on a terminal, final lines otherwise
    caption = False  # a caption line is shown and not ended yet

    try:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(open_client(args))
            connect = client.transcription.connect(args.model, language=args.language)
            session = stack.enter_context(connect)
            if args.local:  # no microphone: the question, then silence to end the turn
                ds.stream_pcm(session, load_input(str(ds.sample_wav_path())) + bytes(32000))
            else:  # 16 kHz PCM16 in 100 ms blocks, closed with the stack
                session.attach(microphone=stack.enter_context(ds.Microphone()))
            print("listening; Ctrl-C to end", flush=True)
            try:
                for transcript in session.transcripts():
                    if transcript.final:
                        print(("\r\x1b[K" if caption else "") + transcript.text, flush=True)
                        caption = False
                        if args.local:
                            break  # one utterance is the demo
                    elif live:
                        print(f"\r\x1b[K{transcript}", end="", flush=True)
                        caption = True
            except KeyboardInterrupt:  # the way to end: finish the last utterance below
                if caption:
                    print(flush=True)  # end the caption line before anything else
                    caption = False
            session.detach()
            session.finish(timeout=args.timeout)
            for transcript in session.transcripts(timeout=args.timeout):
                if transcript.final:
                    print(transcript.text)
    except FAILURES as exc:  # one line, and the exit code of the same failure
        if caption:
            print(flush=True)  # end the caption line before the error
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
