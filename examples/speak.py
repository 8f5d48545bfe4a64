"""Text to speech: speak a text with Qwen-TTS-Realtime and save (or play) the audio.

Shows ``client.speech.connect()`` returning a configured `SpeechSession`,
``session.speak(text)`` returning a `Speech` whose audio streams with
``iter_audio()``, and ``wait()`` giving the `SpeechResult` (the audio, the
characters billed, the first-audio delay) that ``save()`` writes as a WAV.
With ``--play`` the audio goes to the speaker as it arrives (the ``[audio]``
extra), through ``session.attach(speaker=...)``.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/speak.py ["Text to speak."] [--voice Ethan] [--output speech.wav] [--play]

or offline, against a simulated server started in this process:

    python examples/speak.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

import dashscope_sync as ds

TEXT = "Hello! I am Qwen, and this sentence was spoken by a realtime text-to-speech model."

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
    parser.add_argument("text", nargs="?", default=TEXT, help="the text to speak")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, help="a TTS model")
    parser.add_argument("--voice", default="Cherry", help="the voice (default %(default)s)")
    parser.add_argument("--output", default="speech.wav", help="where to write the audio")
    parser.add_argument("--play", action="store_true", help="play it (the [audio] extra)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds allowed for the speech"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)
    check_output(args.output)

    try:
        with contextlib.ExitStack() as stack:
            speaker = None
            if args.play:  # first, closed with the stack: no [audio] extra fails at no cost
                try:
                    speaker = stack.enter_context(ds.Speaker())  # 24 kHz, the default rate
                except ds.ConfigError as exc:  # the extra (or PortAudio) is missing
                    return fail(exc, 8)
            client = stack.enter_context(open_client(args))
            session = stack.enter_context(client.speech.connect(model=args.model, voice=args.voice))
            print(f"voice: {session.info.voice}, {session.info.sample_rate} Hz")
            if speaker is not None:
                session.attach(speaker=speaker)  # every speech plays as its audio arrives
            speech = session.speak(args.text)
            received = 0
            for chunk in speech.iter_audio(timeout=args.timeout):  # as it arrives
                received += len(chunk)
            result = speech.wait(args.timeout)  # already complete: returns at once
            if speaker is not None:
                speaker.drain(args.timeout)
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)

    result.save(args.output)  # 24 kHz mono PCM16 WAV
    print(
        f"spoke {result.characters} characters: {result.duration:.2f} s of audio "
        f"({received} bytes), first audio after {result.first_audio_delay or 0:.3f} s "
        f"-> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
