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
        # The key from DASHSCOPE_API_KEY; the endpoint resolved from the arguments.
        yield ds.Client(base_url=args.url, workspace=args.workspace, region=args.region)
        return
    from dashscope_sync.testing import LocalRealtimeServer

    with LocalRealtimeServer() as server:
        yield ds.Client(server.api_key, base_url=server.url, http_base_url=server.http_base_url)


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
    except ds.DashScopeError as exc:  # every library error: bad key, network, timeout...
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
