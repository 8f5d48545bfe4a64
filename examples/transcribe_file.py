"""Speech recognition of a file: live transcripts while it streams, then one call for all of it.

A Qwen-ASR-Realtime session (``client.transcription.connect``) is configured
once, at connect. The audio goes out in 100 ms appends (here from a
background feed) while ``session.transcripts()`` yields `ds.Utterance`
records: interim ones (``text`` confirmed, ``stash`` provisional: each
replaces the previous one of its utterance) and each utterance's final one.
``finish()`` flushes the last utterance and returns after ``session.finished``;
the iterator ends there. ``client.transcription.transcribe(audio)`` does all
of it in one call.

The file must be 16 kHz mono 16-bit PCM WAV, checked before connecting
(``transcribe(path)`` itself also reads other files, see ``ds.load_audio``).
Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/transcribe_file.py [speech.wav] [--language en]

or offline, against a simulated server started in this process:

    python examples/transcribe_file.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
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
    parser.add_argument(
        "wav", nargs="?", default=str(ds.sample_wav_path()), help="16 kHz mono PCM16 WAV file"
    )
    parser.add_argument("--language", default=None, help="the spoken language (default: detect)")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_ASR_FLASH_REALTIME, help="model")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        pcm = load_input(args.wav)  # before connecting: exit 5, with a conversion hint
        with open_client(args) as client:
            with client.transcription.connect(args.model, language=args.language) as session:
                # At the pace of speech, on the feed's thread; then finish() from a
                # thread of ours while this one reads the transcripts.
                feed = ds.stream_pcm(session, pcm)

                def finish() -> None:
                    feed.wait()
                    session.finish(timeout=args.timeout)

                threading.Thread(target=finish, daemon=True).start()
                interims = 0
                for transcript in session.transcripts(timeout=args.timeout):
                    if transcript.final:
                        print(f"final [{transcript.language}]: {transcript.text}")
                    else:
                        interims += 1  # a live caption would show str(transcript) in place
                print(f"interim transcripts: {interims}")
            result = client.transcription.transcribe(
                pcm, model=args.model, language=args.language, timeout=args.timeout
            )
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    print(f"transcribe(): {result.text} ({result.language}, {len(result.transcripts)} parts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
