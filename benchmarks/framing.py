"""The framing layer alone: `FrameParser` and `encode_frame` against websocket-client's ABNF path.

Parsing: a burst of server frames already in memory (as one socket read
would hand them over), parsed by `FrameParser` (fed in 256 KiB pieces, as
the transport reads) and by websocket-client's ``frame_buffer`` reading the
same bytes through a ``recv`` function (what ``WebSocket.recv_data_frame``
does, minus the socket). Encoding: one masked client frame per call,
`encode_frame` against ``ABNF.create_frame(...).format()``.

Prints MB/s and frames/s per case (best of 3). ``--quick`` runs a tiny
version (the suite may run it so this file cannot rot). Reaches into the
library's private modules on purpose.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial

import websocket
from websocket._abnf import frame_buffer

from dashscope_sync._core.framing import OP_BINARY, OP_TEXT, FrameParser, encode_frame

QUICK = "--quick" in sys.argv
COUNT = 200 if QUICK else 20_000


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 0x10000:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


CASES = {
    # A 100 ms audio delta at 24 kHz (base64 of 4800 bytes) in its event.
    "audio delta (6.5 KB)": json.dumps(
        {"type": "response.audio.delta", "response_id": "resp_1", "delta": "A" * 6400}
    ).encode(),
    # A transcript delta: the small frames that dominate a text reply.
    "text delta (120 B)": json.dumps(
        {"type": "response.audio_transcript.delta", "response_id": "resp_1", "delta": "word "}
    ).encode(),
}


def best(fn: Callable[[], int]) -> tuple[float, int]:
    """The best of 3 wall times of fn (which returns the frames it handled)."""
    times = []
    frames = 0
    for _ in range(3):
        start = time.perf_counter()
        frames = fn()
        times.append(time.perf_counter() - start)
    return min(times), frames


def parse_ours(stream: bytes) -> int:
    parser = FrameParser(16 << 20)
    view = memoryview(stream)
    n = 0
    for start in range(0, len(stream), 256 * 1024):
        parser.feed(view[start : start + 256 * 1024])
        while parser.next_frame() is not None:
            n += 1
    return n


def parse_abnf(stream: bytes) -> int:
    view = memoryview(stream)
    pos = 0

    def recv(size: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos : pos + size])
        pos += size
        return chunk

    buffer = frame_buffer(recv, True)
    n = 0
    while pos < len(stream):
        buffer.recv_frame()
        n += 1
    return n


def encode_ours(payload: bytes) -> int:
    for _ in range(COUNT):
        encode_frame(OP_BINARY, payload)
    return COUNT


def encode_abnf(payload: bytes) -> int:
    for _ in range(COUNT):
        websocket.ABNF.create_frame(payload, OP_BINARY).format()
    return COUNT


def main() -> None:
    columns = ("ours MB/s", "ours fr/s", "ABNF MB/s", "ABNF fr/s")
    print(f"{'case':<34} " + " ".join(f"{c:>11}" for c in columns) + f" {'x':>6}")
    for name, payload in CASES.items():
        stream = server_frame(payload) * COUNT
        cases: list[tuple[str, Callable[[], int], Callable[[], int], int]] = [
            ("parse", partial(parse_ours, stream), partial(parse_abnf, stream), len(stream)),
            (
                "encode",
                partial(encode_ours, payload),
                partial(encode_abnf, payload),
                len(payload) * COUNT,
            ),
        ]
        for what, ours, theirs, size in cases:
            t_ours, n_ours = best(ours)
            t_abnf, n_abnf = best(theirs)
            assert n_ours == n_abnf == COUNT, (n_ours, n_abnf)
            print(
                f"{what + ' ' + name:<34} {size / t_ours / 1e6:>11.0f} {n_ours / t_ours:>11,.0f} "
                f"{size / t_abnf / 1e6:>11.0f} {n_abnf / t_abnf:>11,.0f} {t_abnf / t_ours:>6.1f}"
            )


if __name__ == "__main__":
    main()
