"""Speech recognition of a file: live transcripts while it streams, then one call for all of it.

A Qwen-ASR-Realtime session (``client.transcription.connect``) is configured
once, at connect. The audio goes out in 100 ms appends (here from a
background feed) while ``session.transcripts()`` yields `ds.Transcript`
records: interim ones (``text`` confirmed, ``stash`` provisional: each
replaces the previous one of its utterance) and each utterance's final one.
``finish()`` flushes the last utterance and returns after ``session.finished``;
the iterator ends there. ``client.transcription.transcribe(path)`` does all of
it in one call.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/transcribe_file.py [speech.wav] [--language en]

or offline, against a simulated server started in this process:

    python examples/transcribe_file.py --local
"""

from __future__ import annotations

import argparse
import contextlib
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
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "audio", nargs="?", default=str(ds.sample_wav_path()), help="an audio file (any WAV)"
    )
    parser.add_argument("--language", default=None, help="the spoken language (default: detect)")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_ASR_FLASH_REALTIME, help="model")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with open_client(args) as client:
            with client.transcription.connect(args.model, language=args.language) as session:
                # At the pace of speech, on the feed's thread; then finish() from a
                # thread of ours while this one reads the transcripts.
                feed = ds.stream_file(session, args.audio)

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
                args.audio, model=args.model, language=args.language
            )
    except ds.DashScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"transcribe(): {result.text} ({result.language}, {len(result.transcripts)} parts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
