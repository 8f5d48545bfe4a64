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
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION, help="what to ask the LLM")
    parser.add_argument("--llm", default=LLM, help="the conversation model (default %(default)s)")
    parser.add_argument("--tts", default=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, help="the TTS model")
    parser.add_argument("--voice", default="Cherry", help="the voice (default %(default)s)")
    parser.add_argument("--output", default="answer.wav", help="where to write the audio")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with (
            open_client(args) as client,
            client.realtime.connect(model=args.llm) as llm,
            client.speech.connect(model=args.tts, voice=args.voice) as tts,
        ):
            llm.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
            llm.append_text(args.question)
            reply = llm.create_response()
            times: dict[str, float] = {}

            def pieces() -> Iterator[str]:
                # The LLM's text, piece by piece, echoed as it is handed to the TTS.
                for piece in reply.iter_text(timeout=30):
                    times.setdefault("first piece", time.monotonic())
                    print(piece, end="", flush=True)
                    yield piece
                times["last piece"] = time.monotonic()
                print()

            speech = tts.speak(pieces())  # returns at once: a thread appends the pieces
            for _chunk in speech.iter_audio(timeout=30):
                times.setdefault("first audio", time.monotonic())
            result = speech.wait(30)
            tts.finish(timeout=30)  # session.finish -> session.finished, then the close
            result.save(args.output)
            start = times["first piece"]
            print(
                f"spoke {result.characters} characters ({result.duration:.2f} s of audio); "
                f"after the LLM's first piece: first audio {times['first audio'] - start:.3f} s, "
                f"last piece {times['last piece'] - start:.3f} s -> {args.output}"
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
