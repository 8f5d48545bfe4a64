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
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text", nargs="?", default=TEXT, help="the text to speak")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, help="a TTS model")
    parser.add_argument("--voice", default="Cherry", help="the voice (default %(default)s)")
    parser.add_argument("--output", default="speech.wav", help="where to write the audio")
    parser.add_argument("--play", action="store_true", help="play it (the [audio] extra)")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with (
            open_client(args) as client,
            client.speech.connect(model=args.model, voice=args.voice) as session,
        ):
            print(f"voice: {session.info.voice}, {session.info.sample_rate} Hz")
            speaker = None
            if args.play:
                speaker = ds.Speaker(rate=session.config.sample_rate)
                session.attach(speaker=speaker)  # every speech plays as its audio arrives
            speech = session.speak(args.text)
            received = 0
            for chunk in speech.iter_audio(timeout=30):  # as it arrives
                received += len(chunk)
            result = speech.wait(30)  # already complete: returns at once
            if speaker is not None:
                speaker.drain(30)
                speaker.close()
            result.save(args.output)
            print(
                f"spoke {result.characters} characters: {result.duration:.2f} s of audio "
                f"({received} bytes), first audio after {result.first_audio_delay or 0:.3f} s "
                f"-> {args.output}"
            )
    except ds.DashScopeError as exc:  # every library error: bad key, network, timeout...
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
