"""A function-calling round trip with ``send_function_output``, under server VAD.

The model calls ``get_time``; this program answers with
``session.send_function_output(call_id, output)`` (a string, or any
JSON-serialisable value, sent as JSON). Under server VAD with automatic
responses the service answers a function output by itself, with no
``response.create``: ``create_response()`` then follows that answer instead of
sending a second request that would race it (in manual mode it asks as usual).

On the real service tools need qwen3.5-omni or newer. The local server calls
a tool when the user's text names it.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/function_output.py

or offline, against a simulated server started in this process:

    python examples/function_output.py --local
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


TOOL = ds.FunctionTool(
    name="get_time",
    description="The current time in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
QUESTION = 'Please use get_time with {"city": "Beijing"}: what time is it there?'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, help="model")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per reply")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            # Server VAD stays on (the default): the server answers function outputs itself.
            session.update_session(ds.SessionUpdate(modalities=["text"], tools=[TOOL]))
            session.append_text(QUESTION)
            call = session.create_response().wait(args.timeout)
            calls = [item for item in call.output if item.type == "function_call"]
            if not calls:
                print(f"assistant: {call.text}")
                return 0
            for item in calls:
                print(f"[model calls {item.name}({item.arguments})]")
                session.send_function_output(item.call_id or "", {"time": "09:30", "tz": "+08:00"})
            answer = session.create_response()  # follows the server's own answer
            print(f"assistant: {answer.wait(args.timeout).text}")
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
