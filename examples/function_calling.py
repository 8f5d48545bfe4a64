"""Function calling: the model asks this program for the weather, then answers with it.

``@session.tool`` registers a Python function as a tool: its docstring and type hints
become the JSON Schema the model sees, and when the model calls it the library runs
it, sends the result back and gets the model's answer. ``respond()`` follows that loop
to the final reply; ``result.turn_tool_calls`` says which tools ran, with what.
(examples/function_output.py shows the same loop by hand, with ``send_function_output``.)

On the real service, tools need a qwen3.5-omni realtime model or newer
(qwen3.5-omni-flash-realtime is the default here). The local server calls a tool when
the user's text names it, with the first JSON object in the text as the arguments.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/function_calling.py ["your question"]

or offline, against a simulated server started in this process:

    python examples/function_calling.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Literal

import dashscope_sync as ds

#: Tools need qwen3.5 or newer on the real service.
MODEL = "qwen3.5-omni-flash-realtime"
QUESTION = 'Please use get_weather with {"city": "Hangzhou"}: do I need an umbrella today?'
Unit = Literal["celsius", "fahrenheit"]

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


def get_weather(city: str, unit: Unit = "celsius") -> dict[str, object]:
    """Get today's weather forecast for a city.

    Args:
        city: The city, e.g. Hangzhou.
        unit: The temperature unit.
    """
    celsius = 24  # a stand-in for a real weather service, with fixed data
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {"city": city, "forecast": "light rain in the afternoon", "temperature": temperature}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION, help="what to ask")
    parser.add_argument("--model", default=MODEL, help="model name (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole turn")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with open_client(args) as client, client.realtime.connect(model=args.model) as session:
            session.update_session(ds.SessionUpdate(modalities=["text"], turn_detection=None))
            session.tool(get_weather)  # declared to the model; run by the library when called
            print(f"you: {args.question}")
            result = session.respond(text=args.question, timeout=args.timeout)
            for call in result.turn_tool_calls:
                print(f"[{call.name}({call.raw_arguments}), id {call.call_id}: {call.output}]")
            print(f"assistant: {result.text}")
            return 0
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)


if __name__ == "__main__":
    sys.exit(main())
