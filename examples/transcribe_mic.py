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
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", default=None, help="the spoken language (default: detect)")
    parser.add_argument("--model", default=ds.MODEL_QWEN3_ASR_FLASH_REALTIME, help="model")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    live = sys.stdout.isatty()  # captions in place on a terminal, final lines otherwise

    try:
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(open_client(args))
            connect = client.transcription.connect(args.model, language=args.language)
            session = stack.enter_context(connect)
            if args.local:  # no microphone: the question, then silence to end the turn
                ds.stream_pcm(session, ds.load_audio(ds.sample_wav_path()) + bytes(32000))
            else:  # 16 kHz PCM16 in 100 ms blocks, closed with the stack
                session.attach(microphone=stack.enter_context(ds.Microphone()))
            print("listening; Ctrl-C to end", flush=True)
            try:
                for transcript in session.transcripts():
                    if transcript.final:
                        print(("\r\x1b[K" if live else "") + transcript.text, flush=True)
                        if args.local:
                            break  # one utterance is the demo
                    elif live:
                        print(f"\r\x1b[K{transcript}", end="", flush=True)
            except KeyboardInterrupt:
                print()  # end the caption line before anything else
            session.detach()
            session.finish(timeout=args.timeout)
            for transcript in session.transcripts(timeout=args.timeout):
                if transcript.final:
                    print(transcript.text)
    except ds.DashScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
