"""Speech plus a picture in one turn: ask about an image with your voice.

Shows how to send a video frame with the audio. The service wants audio in
the input buffer before the first image, and the commit submits the image
together with the audio, so the order is: append audio, append the JPEG,
commit, ask for a response. The first turn does these steps one by one; the
second does the same with one call, ``session.respond(audio, image=jpeg)``.

Images must be JPEG, at most 500 KB (480p or 720p is recommended), and at
most about one a second. The default picture, ``sunny_lake.jpg`` next to this
script, is a 320x240 drawing of a lake under a sunny sky; the default audio
asks what the weather is like.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/image_and_audio.py [--image photo.jpg] [--wav question.wav]

or offline, against a simulated server started in this process:

    python examples/image_and_audio.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import dashscope_sync as ds

CHUNK = 3200  # 100 ms of 16 kHz mono PCM16: the pace the service recommends
IMAGE = Path(__file__).with_name("sunny_lake.jpg")

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
    parser.add_argument("--image", default=str(IMAGE), help="a JPEG file (at most 500 KB)")
    parser.add_argument(
        "--wav", default=str(ds.sample_wav_path()), help="the spoken question: 16 kHz mono WAV"
    )
    parser.add_argument("--model", default=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name")
    parser.add_argument(
        "--instructions",
        default="Answer from what you see in the picture, in one or two sentences.",
        help="instructions for both replies",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per turn")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        jpeg = Path(args.image).read_bytes()
    except OSError as exc:
        return fail(OSError(f"cannot read the image: {exc.strerror or exc}"), 5)

    try:
        pcm = load_input(args.wav)
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            session.update_session(
                ds.SessionUpdate(modalities=["text", "audio"], turn_detection=None)  # manual mode
            )

            # Turn 1, step by step: audio first, then the frame, then commit.
            # append_image checks the bytes are a JPEG within the size limit
            # (ds.ConfigError otherwise) before anything is sent.
            for start in range(0, len(pcm), CHUNK):
                session.append_audio(pcm[start : start + CHUNK])
            session.append_image(jpeg)
            session.commit_audio()  # submits the image together with the audio
            response = session.create_response(instructions=args.instructions)
            result = response.wait(args.timeout)
            print(f"turn 1 (step by step): {result.text}")

            # Turn 2, the same input in one call: respond() appends the audio
            # in 100 ms chunks, then the image, commits, asks and waits.
            result = session.respond(
                pcm, image=jpeg, instructions=args.instructions, timeout=args.timeout
            )
            print(f"turn 2 (respond):      {result.text}")
            print(f"usage of turn 2: {result.usage}")
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
