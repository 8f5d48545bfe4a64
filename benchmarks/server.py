"""The benchmark's loopback WebSocket server: raw sockets, pre-encoded frames.

Run by ``bench.py`` in its own process, so its CPU time is never counted in a
contender's. It prints ``PORT <n>`` once listening, and exits when its
standard input closes (the parent ended) or after ``--max-seconds``.

Every connection gets ``session.created`` at once; what follows is chosen by
the ``model`` query parameter, which every client under test puts in the URL:

``burst-N``
    On the first client text frame that mentions ``response.create``:
    ``response.created``, then N x (``response.audio.delta`` carrying 4800
    bytes of PCM, ``response.audio_transcript.delta``), then
    ``response.done``, all pre-encoded once and sent with one ``sendall``.
``paced-N-INTERVAL_US-PHASE_US``
    On the trigger: N audio deltas, one every INTERVAL_US microseconds on a
    grid aligned to multiples of INTERVAL_US plus PHASE_US (so concurrent
    sessions can be spread evenly over the interval), then ``response.done``.
    Each delta's ``event_id`` is ``mono_`` followed by this process's
    ``time.monotonic_ns()`` taken just before the frame is written. On Linux
    CLOCK_MONOTONIC is one clock for the whole system, so a client process
    subtracting it from its own ``time.monotonic_ns()`` gets the one-way
    latency from the server's write to its own code.
``upload``
    Counts the audio of every ``input_audio_buffer.append`` (base64-decoded);
    on ``input_audio_buffer.commit`` answers ``input_audio_buffer.committed``
    whose ``item_id`` is ``bytes_<audio bytes>_<append frames>``.
``idle`` (anything else)
    Nothing more.

Pings are answered; a close frame is echoed and the connection closed. Only
the standard library is used; one thread per connection reads, one shared
pacer thread writes the paced streams.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import heapq
import itertools
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: 100 ms of 24 kHz mono PCM16: the size of one audio delta.
AUDIO_DELTA_BYTES = 4800
TRANSCRIPT_DELTA = "你好\N{FULLWIDTH COMMA}"
RESPONSE_ID = "resp_bench"
ITEM_ID = "item_bench"


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def _json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _pcm() -> bytes:
    # Deterministic noise, so the base64 is not one repeated pattern.
    return random.Random(1234).randbytes(AUDIO_DELTA_BYTES)


_PART = {"response_id": RESPONSE_ID, "item_id": ITEM_ID, "output_index": 0, "content_index": 0}
AUDIO_B64 = base64.b64encode(_pcm()).decode()


def session_created(model: str, n: int) -> bytes:
    return ws_frame(
        _json(
            {
                "event_id": f"event_created_{n}",
                "type": "session.created",
                "session": {
                    "id": f"sess_bench_{n}",
                    "object": "realtime.session",
                    "model": model,
                    "modalities": ["text", "audio"],
                    "voice": "Cherry",
                    "input_audio_format": "pcm16",
                    "output_audio_format": "pcm24",
                    "input_audio_transcription": {"model": "gummy-realtime-v1"},
                    "turn_detection": None,
                    "tools": [],
                    "tool_choice": "auto",
                    "temperature": 0.8,
                },
            }
        )
    )


RESPONSE_CREATED = ws_frame(
    _json(
        {
            "event_id": "event_rc",
            "type": "response.created",
            "response": {
                "id": RESPONSE_ID,
                "object": "realtime.response",
                "status": "in_progress",
                "output": [],
            },
        }
    )
)
RESPONSE_DONE = ws_frame(
    _json(
        {
            "event_id": "event_rd",
            "type": "response.done",
            "response": {
                "id": RESPONSE_ID,
                "object": "realtime.response",
                "status": "completed",
                "output": [],
                "usage": {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0},
            },
        }
    )
)
AUDIO_DELTA = ws_frame(
    _json({"event_id": "event_ad", "type": "response.audio.delta", **_PART, "delta": AUDIO_B64})
)
TRANSCRIPT_FRAME = ws_frame(
    _json(
        {
            "event_id": "event_td",
            "type": "response.audio_transcript.delta",
            **_PART,
            "delta": TRANSCRIPT_DELTA,
        }
    )
)

# The paced delta: a fixed-width stamp keeps the frame length (and header) fixed.
_STAMP_WIDTH = 20
_PACED_HEAD = b'{"event_id":"mono_'
_PACED_TAIL = (
    b'","type":"response.audio.delta",'
    + _json({**_PART, "delta": AUDIO_B64})[1:]  # the rest of the object, without "{"
)
_PACED_LEN = len(_PACED_HEAD) + _STAMP_WIDTH + len(_PACED_TAIL)
PACED_PREFIX = ws_frame(b"x" * _PACED_LEN)[:-_PACED_LEN] + _PACED_HEAD

_burst_cache: dict[int, bytes] = {}
_burst_lock = threading.Lock()


def burst_blob(n: int) -> bytes:
    with _burst_lock:
        blob = _burst_cache.get(n)
        if blob is None:
            blob = b"".join(
                itertools.chain(
                    [RESPONSE_CREATED], [AUDIO_DELTA, TRANSCRIPT_FRAME] * n, [RESPONSE_DONE]
                )
            )
            _burst_cache[n] = blob
        return blob


class Conn:
    __slots__ = ("closed", "interval_ns", "lock", "n", "remaining", "sock")

    def __init__(self, sock: socket.socket, n: int) -> None:
        self.sock = sock
        self.n = n
        self.lock = threading.Lock()
        self.closed = False
        self.remaining = 0
        self.interval_ns = 0

    def send(self, data: bytes) -> bool:
        with self.lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True
                return False
            return True


class Pacer:
    """One thread that writes every paced stream on its schedule."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Conn]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        threading.Thread(target=self._run, name="pacer", daemon=True).start()

    def add(self, conn: Conn, n: int, interval_us: int, phase_us: int) -> None:
        interval = interval_us * 1000
        now = time.monotonic_ns()
        # The next grid point at least one interval away, shifted by the phase.
        first = (now // interval + 1) * interval + (phase_us * 1000) % interval
        if first - now < interval // 2:
            first += interval
        conn.remaining = n
        conn.interval_ns = interval
        with self._cond:
            heapq.heappush(self._heap, (first, next(self._seq), conn))
            self._cond.notify()

    def _run(self) -> None:
        heap = self._heap
        cond = self._cond
        monotonic_ns = time.monotonic_ns
        prefix, tail = PACED_PREFIX, _PACED_TAIL
        while True:
            with cond:
                while True:
                    if not heap:
                        cond.wait()
                        continue
                    due = heap[0][0]
                    wait = due - monotonic_ns()
                    if wait > 0:
                        cond.wait(wait / 1e9)
                        continue
                    _, _, conn = heapq.heappop(heap)
                    break
            stamp = b"%020d" % monotonic_ns()
            if not conn.send(prefix + stamp + tail):
                continue
            conn.remaining -= 1
            if conn.remaining > 0:
                with cond:
                    heapq.heappush(heap, (due + conn.interval_ns, next(self._seq), conn))
            else:
                conn.send(RESPONSE_DONE)


def _unmask(mask: bytes, data: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _read_exact(rf, n: int) -> bytes:
    data = rf.read(n)
    if data is None or len(data) < n:
        raise ConnectionError("connection closed")
    return data


def serve_connection(sock: socket.socket, n: int, pacer: Pacer) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rf = sock.makefile("rb", buffering=1 << 16)
    conn = Conn(sock, n)
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            line = rf.readline(65536)
            if not line:
                return
            request += line
            if line in (b"\r\n", b"\n"):
                break
        lines = request.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        key = headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        model = parse_qs(urlsplit(target).query).get("model", ["idle"])[0]
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        conn.send(session_created(model, n))
        kind, *params = model.split("-")
        audio_bytes = frames = 0
        triggered = False
        while True:
            b0, b1 = _read_exact(rf, 2)
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", _read_exact(rf, 2))
            elif length == 127:
                (length,) = struct.unpack("!Q", _read_exact(rf, 8))
            mask = _read_exact(rf, 4) if b1 & 0x80 else b""
            payload = _read_exact(rf, length)
            if mask:
                payload = _unmask(mask, payload)
            if opcode == 8:  # close: echo it and hang up
                conn.send(ws_frame(payload[:2], 8))
                return
            if opcode == 9:
                conn.send(ws_frame(payload, 0xA))
                continue
            if opcode not in (1, 0):
                continue
            if kind == "upload":
                if b"input_audio_buffer.append" in payload:
                    audio = json.loads(payload)["audio"]
                    audio_bytes += len(binascii.a2b_base64(audio))
                    frames += 1
                elif b"input_audio_buffer.commit" in payload:
                    conn.send(
                        ws_frame(
                            _json(
                                {
                                    "event_id": "event_commit",
                                    "type": "input_audio_buffer.committed",
                                    "previous_item_id": None,
                                    "item_id": f"bytes_{audio_bytes}_{frames}",
                                }
                            )
                        )
                    )
                    audio_bytes = frames = 0
            elif b"response.create" in payload and not triggered:
                triggered = True
                if kind == "burst":
                    conn.send(burst_blob(int(params[0])))
                elif kind == "paced":
                    count, interval_us, phase_us = (int(p) for p in params[:3])
                    pacer.add(conn, count, interval_us, phase_us)
    except (ConnectionError, OSError, ValueError, IndexError):
        pass
    finally:
        with conn.lock:
            conn.closed = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=4 * 3600)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port), backlog=256)
    pacer = Pacer()

    def watch_stdin() -> None:
        # The parent holds our stdin: when it goes away, so do we.
        try:
            while sys.stdin.buffer.read(1):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    timer = threading.Timer(args.max_seconds, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    counter = itertools.count(1)
    while True:
        sock, _ = listener.accept()
        threading.Thread(
            target=serve_connection, args=(sock, next(counter), pacer), daemon=True
        ).start()


if __name__ == "__main__":
    main()
