"""A text-only chat: several turns in one session, each reply streamed as it is written.

Shows text in and text out, without any audio: the session is set to
``modalities=["text"]``, each question is added with ``append_text`` (a user
message), and ``create_response()`` returns a handle whose ``iter_text()``
yields the reply's text as it arrives. The session keeps the conversation,
so later questions can refer to earlier answers.

The questions come from the command line, else from the keyboard when run
interactively (an empty line or Ctrl-D ends the chat), else from a built-in
list.

On the real service, text messages (``conversation.item.create``) need a
newer model: qwen3.5-omni-flash-realtime (the default here) or later.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/text_chat.py ["first question" "second question" ...]

or offline, against a simulated server started in this process:

    python examples/text_chat.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

import dashscope_sync as ds

#: Text messages need qwen3.5 or newer on the real service.
MODEL = "qwen3.5-omni-flash-realtime"

QUESTIONS = [
    "In one sentence: what is a realtime voice API?",
    "Name two things a program should do when the network drops.",
    "Summarise your previous two answers in five words.",
]

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


def questions(given: list[str]) -> Iterator[str]:
    """The questions: from the command line, the keyboard, or the built-in list."""
    if not given and sys.stdin.isatty():
        print("Type a question (an empty line or Ctrl-D ends the chat).")
        while True:
            try:
                line = input("you: ").strip()
            except EOFError:
                print()
                return
            if not line:
                return
            yield line
    else:
        for question in given or QUESTIONS:
            print(f"you: {question}")
            yield question


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="*", help="questions to ask, one turn each")
    parser.add_argument("--model", default=MODEL, help="model name (default %(default)s)")
    parser.add_argument(
        "--instructions",
        default="You are a concise assistant. Answer in at most two sentences.",
        help="the system prompt",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="longest wait for each next piece of text"
    )
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            session.update_session(
                ds.SessionUpdate(
                    modalities=["text"],  # text replies only: no audio is generated or sent
                    instructions=args.instructions,
                    turn_detection=None,  # manual mode: every response is ours to ask for
                )
            )
            total_tokens = 0
            for question in questions(args.question):
                session.append_text(question)  # a user message in the conversation
                response = session.create_response()
                print("assistant: ", end="", flush=True)
                # iter_text() yields each chunk once, as it arrives, and ends
                # with the response; a failed or cancelled response raises.
                for piece in response.iter_text(timeout=args.timeout):
                    print(piece, end="", flush=True)
                print()
                result = response.wait(args.timeout)  # already done: returns at once
                total_tokens += result.usage.total_tokens if result.usage else 0
            print(f"tokens used: {total_tokens}")
    except FAILURES as exc:  # one line, and the exit code of the same failure
        print(file=sys.stderr)  # after a reply cut short mid-line
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
