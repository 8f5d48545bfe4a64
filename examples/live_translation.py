"""Live translation: stream speech in, get the translation as it firms up.

LiveTranslate models translate as the audio streams in: there is no
``response.create``. The translation arrives as ``text``/``stash`` events
(`ds.ResponseAudioTranscriptText`): ``text`` is confirmed, ``stash`` the
provisional tail, so a live display shows ``text + stash`` and replaces it on
every event. A `Response` handle from ``next_response()`` (taken before the
audio) collects the confirmed text and the translated audio. There is no
commit: ``finish_session()`` ends the speech, flushes and waits for
``session.finished``, which comes after the last translation.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/live_translation.py [speech.wav] --to en [--output translated.wav]

or offline, against a simulated server started in this process:

    python examples/live_translation.py --local
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
    parser.add_argument(
        "wav", nargs="?", default=str(ds.sample_wav_path()), help="16 kHz mono PCM16 WAV file"
    )
    parser.add_argument("--to", default="en", help="target language (default %(default)s)")
    parser.add_argument("--output", default="translated.wav", help="the translated audio")
    parser.add_argument(
        "--model", default=ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME, help="model"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)

    try:
        pcm = load_input(args.wav)
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            session.update_session(
                ds.SessionUpdate(
                    modalities=["text", "audio"],
                    translation=ds.Translation(language=args.to),
                    turn_detection=None,  # manual: session.finish below ends the speech
                )
            )
            firmed: list[str] = []

            @session.on(ds.ResponseAudioTranscriptText)
            def show(event: ds.ResponseAudioTranscriptText) -> None:
                # What a live caption shows: the confirmed text, then the provisional tail.
                firmed.append(f"{event.text}|{event.stash}")

            response = session.next_response()  # the translation the server will start
            for start in range(0, len(pcm), 3200):  # 100 ms at a time
                session.append_audio(pcm[start : start + 3200])
            # No commit on LiveTranslate: session.finish ends the speech, and
            # session.finished comes after the last translation.
            finished = session.finish_session(timeout=args.timeout)
            for piece in response.iter_text(timeout=args.timeout):
                print(f"confirmed: {piece!r}")
            result = response.wait(args.timeout)
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    print(f"live caption steps: {len(firmed)}, last: {firmed[-1] if firmed else ''}")
    print(f"translation: {result.text}")
    print(f"session finished: {finished is not None}")
    if result.audio:
        result.save_wav(args.output)
        print(f"translated audio: {result.audio_seconds:.2f} s -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
