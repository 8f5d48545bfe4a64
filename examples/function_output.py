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
    except ds.DashScopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
