"""Temporary API keys: mint a short-lived key, then open a session with it.

Shows ``client.tokens.create(expire_in_seconds=60)`` (``POST /api/v1/tokens``),
which turns your long-lived key into a temporary one (1 to 1800 seconds).
Hand that key to code you trust less than your own account, such as a worker
process, a browser page or a device, so your real key never leaves this
program. Here a second `ds.Client` made from the temporary key alone opens a
realtime session and holds one voice turn.

A temporary key works only where it was issued: keep the same region (both
the realtime endpoint and the HTTP host), as the second client here does by
copying the first client's endpoints.

Run against the real service (the API key from ``DASHSCOPE_API_KEY``):

    python examples/temporary_key.py [--expire 60]

or offline, against a simulated server started in this process:

    python examples/temporary_key.py --local
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--expire", type=int, default=60, help="the key's lifetime in seconds (1 to 1800)"
    )
    parser.add_argument("--model", default=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for the turn")
    add_connection_options(parser)
    args = parser.parse_args(argv)

    try:
        with open_client(args) as client:
            # 1. With the long-lived key: mint a temporary one. Its repr hides
            #    the token; key.token is the string to hand over.
            key = client.tokens.create(expire_in_seconds=args.expire)
            print(f"temporary key {key!r}: expires in {key.expires_in:.0f} s")

            # 2. Elsewhere (another process, say), only the temporary key is
            #    needed. Same region as the key: copy both endpoints.
            worker = ds.Client(
                key.token, base_url=client.base_url, http_base_url=client.http_base_url
            )
            with worker.realtime.connect(model=args.model) as session:
                print(f"connected with the temporary key: session {session.id}")
                session.update_session(
                    ds.SessionUpdate(modalities=["text"], turn_detection=None)  # manual mode
                )
                result = session.respond(ds.load_wav(ds.sample_wav_path()), timeout=args.timeout)
                print(f"assistant: {result.text}")
    except ds.AuthenticationError as exc:
        # A refused or expired key: the service's code and message say which.
        return fail(ds.AuthenticationError(f"the key was refused: {exc}"), 4)
    except FAILURES as exc:  # one line, and the exit code of the same failure
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
