"""Text to speech: what ``speak()`` adds between a text piece and its append on the wire.

Run by hand (about 20 s)::

    python benchmarks/speech.py [--pieces 1000] [--paced 300] [--reps 5] [--json FILE]

Two workloads, against a minimal Qwen-TTS-Realtime server on loopback in a
process of its own (``--serve``, standard library only), so its CPU is never
counted:

- **piece latency**: ``speak(pieces)`` with a generator yielding one piece
  every 2 ms (an LLM's pace, and spaced so that no piece waits for the one
  before); for each piece, the server's ``time.monotonic_ns()`` when the
  append frame was read minus the client's when the generator yielded it.
  CLOCK_MONOTONIC is one clock for the whole system on Linux, so the
  difference is the one-way delay through ``speak()``, the send and loopback.
  Target: under 1 ms (p50).
- **CPU per piece**: 1000 pieces yielded at once; the client process's CPU
  (``time.process_time()``, all threads, user + system) from ``speak()`` to
  the commit on the wire, per piece, next to the CPU of encoding the same
  frames alone (the JSON text of each append and its masked WebSocket frame,
  websocket-client's ``ABNF``) and of encoding and writing them on a raw
  socket, one write each (the floor of a client that writes each frame on
  its own). Target: within 2x of encoding alone.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PIECE = "word "  # about one LLM token


# The server (--serve) -------------------------------------------------------------


def _server_frame(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(obj).encode()
    n = len(payload)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 1 << 16:
        head = bytes([0x81, 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x81, 127]) + struct.pack("!Q", n)
    return head + payload


def _client_frames(buffer: bytearray) -> Iterator[tuple[int, bytes]]:
    """Pop every complete (masked) client frame from ``buffer``."""
    while len(buffer) >= 2:
        opcode, n = buffer[0] & 0x0F, buffer[1] & 0x7F
        at = 2
        if n == 126:
            if len(buffer) < 4:
                return
            n, at = struct.unpack("!H", buffer[2:4])[0], 4
        elif n == 127:
            if len(buffer) < 10:
                return
            n, at = struct.unpack("!Q", buffer[2:10])[0], 10
        if len(buffer) < at + 4 + n:
            return
        mask = buffer[at : at + 4]
        data = bytes(buffer[at + 4 : at + 4 + n])
        del buffer[: at + 4 + n]
        yield opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _serve_one(conn: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(4096)
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    conn.sendall(_server_frame({"type": "session.created", "session": {"id": "sess_bench"}}))
    arrivals: list[int] = []
    buffer = bytearray()
    responses = 0
    while True:
        chunk = conn.recv(65536)
        now = time.monotonic_ns()
        if not chunk:
            break
        buffer += chunk
        for opcode, payload in _client_frames(buffer):
            if opcode == 0x8:
                conn.sendall(bytes([0x88, 2]) + payload[:2])
                print(json.dumps(arrivals), flush=True)
                return
            if opcode != 0x1:
                continue
            # Cheap checks first: the appends are what is timed.
            if b'"input_text_buffer.append"' in payload:
                arrivals.append(now)
                continue
            event = json.loads(payload)
            kind = event["type"]
            if kind == "session.update":
                reply = {"type": "session.updated", "session": event["session"]}
                conn.sendall(_server_frame(reply))
            elif kind == "input_text_buffer.commit":
                responses += 1
                rid = f"resp_{responses}"
                frames = [
                    {"type": "input_text_buffer.committed", "item_id": ""},
                    {"type": "response.created", "response": {"id": rid}},
                    {"type": "response.done", "response": {"id": rid, "status": "completed"}},
                ]
                conn.sendall(b"".join(_server_frame(f) for f in frames))


def serve() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


# The client ---------------------------------------------------------------------------


class Server:
    """The --serve process; ``arrivals()`` reads the timestamps of one finished connection."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/"

    def arrivals(self) -> list[int]:
        assert self.proc.stdout is not None
        values: list[int] = json.loads(self.proc.stdout.readline())
        return values

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _session(url: str) -> Any:
    import dashscope_sync as ds

    client = ds.Client("bench", base_url=url)
    return client.speech.connect(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, timeout=10)


def piece_latency(server: Server, n: int, interval: float = 0.002) -> dict[str, float]:
    """Per piece: server arrival minus the generator's yield, in microseconds."""
    yielded: list[int] = []

    def pieces() -> Iterator[str]:
        start = time.monotonic() + 0.05
        for i in range(n):
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yielded.append(time.monotonic_ns())
            yield PIECE

    with _session(server.url) as session:
        session.speak(pieces()).wait(60)
    arrivals = server.arrivals()
    assert len(arrivals) == n, (len(arrivals), n)
    delays = sorted((a - y) / 1000 for a, y in zip(arrivals, yielded, strict=True))
    return {
        "p50_us": statistics.median(delays),
        "p99_us": delays[int(0.99 * (n - 1))],
        "max_us": delays[-1],
    }


def speak_cpu(server: Server, n: int) -> float:
    """CPU seconds per piece of ``speak()`` for ``n`` pieces yielded at once."""
    with _session(server.url) as session:
        before = time.process_time()
        speech = session.speak(PIECE for _ in range(n))
        speech.wait(60)  # the commit's answer came: every append was sent before it
        used = time.process_time() - before
    assert len(server.arrivals()) == n
    return used / n


def encode_cpu(n: int) -> float:
    """CPU seconds per piece of encoding the append frames alone (JSON text, masked frame)."""
    from websocket import ABNF

    before = time.process_time()
    for i in range(n):
        text = json.dumps(
            {
                "event_id": f"event_0123456789ab_{i}",
                "type": "input_text_buffer.append",
                "text": PIECE,
            }
        )
        ABNF.create_frame(text, ABNF.OPCODE_TEXT).format()
    return (time.process_time() - before) / n


def floor_cpu(n: int) -> float:
    """CPU seconds per piece of encoding the frames and writing each on a raw socket."""
    from websocket import ABNF

    a, b = socket.socketpair()
    sink = threading.Thread(target=lambda: [None for _ in iter(lambda: b.recv(1 << 16), b"")])
    sink.start()
    before = time.process_time()
    for i in range(n):
        text = json.dumps(
            {
                "event_id": f"event_0123456789ab_{i}",
                "type": "input_text_buffer.append",
                "text": PIECE,
            }
        )
        a.sendall(ABNF.create_frame(text, ABNF.OPCODE_TEXT).format())
    used = time.process_time() - before
    a.close()
    sink.join()
    b.close()
    return used / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pieces", type=int, default=1000, help="pieces for the CPU workload")
    parser.add_argument("--paced", type=int, default=300, help="pieces for the latency workload")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (medians are shown)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    server = Server()
    try:
        speak_cpu(server, 100)  # warm-up: imports, first frames
        runs: list[dict[str, float]] = []
        for _ in range(args.reps):
            run = piece_latency(server, args.paced)
            run["speak_cpu_us"] = speak_cpu(server, args.pieces) * 1e6
            run["encode_cpu_us"] = encode_cpu(args.pieces) * 1e6
            run["floor_cpu_us"] = floor_cpu(args.pieces) * 1e6
            runs.append(run)
    finally:
        server.close()
    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    ratios = [run["speak_cpu_us"] / run["encode_cpu_us"] for run in runs]
    print(f"piece latency ({args.paced} pieces, 2 ms apart; median of {args.reps} runs):")
    print(
        f"  p50 {med['p50_us']:.0f} us, p99 {med['p99_us']:.0f} us, max {med['max_us']:.0f} us"
        f"   target p50 < 1000 us: {'met' if med['p50_us'] < 1000 else 'MISSED'}"
    )
    print(f"CPU per piece ({args.pieces} pieces at once):")
    print(
        f"  speak() {med['speak_cpu_us']:.1f} us, encoding alone {med['encode_cpu_us']:.1f} us, "
        f"encoding + raw socket send {med['floor_cpu_us']:.1f} us"
    )
    ratio = statistics.median(ratios)
    print(f"  speak() / encoding: {ratio:.2f}x   target <= 2x: {'met' if ratio <= 2 else 'MISSED'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"runs": runs, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
