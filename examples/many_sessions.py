"""Many sessions on one reactor: hundreds of conversations read by one thread.

Opens N sessions (200 by default) on one ``ds.Reactor()``: its one thread
reads every session's socket, and a small pool runs their handlers, so the
threads do not grow with the sessions. Each session is asked to repeat a
ticket number of its own, and each reply is checked for that number (every
session gets the answer to its own question). Prints the threads the
library used, the time taken, and how many replies were right.

The questions go out from this one thread (a send does not wait for the
reply); the replies are waited for in turn. Connecting is what takes time on
the real service (a TLS handshake each), so a few threads of ours do it side
by side. Mind your account's limit on concurrent sessions there.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/many_sessions.py [--sessions 200]

or offline, against a simulated server started in this process:

    python examples/many_sessions.py --local
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dashscope_sync as ds

#: Text messages need qwen3.5 or newer on the real service.
MODEL = ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME

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


def on_reactor(client: ds.Client, reactor: ds.Reactor) -> ds.Client:
    """A client with ``client``'s key and endpoints whose sessions ``reactor`` reads."""
    return ds.Client(
        client.api_key,
        workspace=client.workspace,
        base_url=client.realtime_url,
        http_base_url=client.http_base_url,
        reactor=reactor,
    )


def ticket(number: int) -> str:
    return f"T-{number:04d}"


def library_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dashscope_sync-")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="how many (default 200)")
    parser.add_argument("--model", default=MODEL, help="model name (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="longest wait for a reply")
    add_connection_options(parser)
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")

    sessions: list[ds.RealtimeSession] = []
    handled_on: set[str] = set()  # the pool threads the handlers ran on
    try:
        with open_client(args) as plain, ds.Reactor() as reactor:
            client = on_reactor(plain, reactor)
            try:
                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=16) as connecting:
                    opening = [
                        connecting.submit(client.realtime.connect, model=args.model)
                        for _ in range(args.sessions)
                    ]
                sessions = [f.result() for f in opening if f.exception() is None]
                for future in opening:
                    future.result()  # raises the first failure to connect, if any
                connected = time.monotonic()
                responses = []
                for number, session in enumerate(sessions):
                    session.on(
                        ds.ResponseDone,
                        lambda _event: handled_on.add(threading.current_thread().name),
                    )
                    session.append_text(f"Repeat this ticket number back to me: {ticket(number)}.")
                    responses.append(session.create_response(modalities=["text"]))
                wrong = [
                    number
                    for number, response in enumerate(responses)
                    if ticket(number) not in response.wait(args.timeout).text
                ]
                answered = time.monotonic()
                threads = library_threads()
            finally:
                for session in sessions:
                    session.close()
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    print(f"sessions: {len(sessions)} on one reactor")
    print(f"library threads: {len(threads)} ({', '.join(sorted(threads))})")
    print(f"handlers ran on: {len(handled_on)} pool thread(s)")
    print(f"connected in {connected - started:.2f} s, answered in {answered - connected:.2f} s")
    print(f"replies OK: {len(sessions) - len(wrong)}/{len(sessions)}")
    if wrong:
        print(f"wrong replies from sessions {wrong}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
