"""Where one received event's CPU time goes, stage by stage, in one thread.

Run by ``bench.py --profile`` (or directly; ``--quick`` for a fast check,
which the test suite runs so this file cannot rot). Unlike the contenders
this reaches into dashscope_sync's private modules, to time each stage of the
reader's path alone on the burst's own frames: frame parsing, decoding
(UTF-8, JSON, cattrs, base64), the state machine and the hand-over to the
buffer. A stage that fails (its internals moved) is printed with its error
and the run exits with status 1: nothing here fails quietly.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import server

N = 200 if "--quick" in sys.argv else 20_000


def payload(frame: bytes) -> bytes:
    n = frame[1] & 0x7F
    return frame[2 + {126: 2, 127: 8}.get(n, 0) :]


AUDIO = payload(server.AUDIO_DELTA)
TEXT = payload(server.TRANSCRIPT_FRAME)


def per_call(fn: Callable[[], object], n: int = N) -> float:
    """Thread CPU microseconds per call of fn (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - t) / n * 1e6)
    return best


class FakeSocket:
    """Serves pre-encoded frames from memory, as a socket's ``recv`` would (no syscalls)."""

    def __init__(self, blob: bytes) -> None:
        self.view = memoryview(blob)
        self.pos = 0

    def recv(self, n: int) -> bytes:
        data = bytes(self.view[self.pos : self.pos + n])
        self.pos += n
        return data

    def recv_into(self, buffer: memoryview) -> int:
        data = self.view[self.pos : self.pos + len(buffer)]
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def pending(self) -> int:
        """Bytes ready without waiting, as a TLS socket says: always, from memory."""
        return len(self.view) - self.pos

    def gettimeout(self) -> float | None:
        return None


def frames_cost(
    make_reader: Callable[[FakeSocket], Callable[[], object]], n: int = min(4000, N)
) -> float:
    """CPU us per frame of a reader over in-memory frames (audio and transcript alternating)."""
    blob = (server.AUDIO_DELTA + server.TRANSCRIPT_FRAME) * (n // 2)
    best = float("inf")
    for _ in range(3):
        read = make_reader(FakeSocket(blob))
        t = time.thread_time()
        for _ in range(n):
            read()
        best = min(best, (time.thread_time() - t) / n * 1e6)
    return best


def syscall_cost() -> float:
    """CPU us of one small ``recv`` on a loopback socket with data waiting."""
    a, b = socket.socketpair()
    a.sendall(b"x" * 100_000)
    t = time.thread_time()
    for _ in range(20_000):
        b.recv(2)
    cost = (time.thread_time() - t) / 20_000 * 1e6
    a.close()
    b.close()
    return cost


def main() -> int:
    rows: list[tuple[str, float | str]] = []

    failed: list[str] = []

    def add(name: str, fn: Callable[[], float]) -> None:
        try:
            rows.append((name, fn()))
        except Exception as exc:  # internals moved: say so loudly, keep measuring the rest
            rows.append((name, f"FAILED ({type(exc).__name__}: {exc})"))
            failed.append(name)

    audio_text = AUDIO.decode()
    obj = json.loads(audio_text)
    add("floor: json.loads(audio frame)", lambda: per_call(lambda: json.loads(audio_text)))
    add(
        "floor: base64.b64decode(delta)",
        lambda: per_call(lambda: base64.b64decode(obj["delta"])),
    )
    text_text = TEXT.decode()
    add("floor: json.loads(transcript frame)", lambda: per_call(lambda: json.loads(text_text)))

    from dashscope_sync._wire import codec as _protocol

    add("ds: decode(audio frame bytes), total", lambda: per_call(lambda: _protocol.decode(AUDIO)))
    add("ds: decode(transcript frame bytes)", lambda: per_call(lambda: _protocol.decode(TEXT)))
    add("ds:   bytes.decode('utf-8') audio", lambda: per_call(lambda: AUDIO.decode("utf-8")))
    add(
        "ds:   strict base64 of delta",
        lambda: per_call(lambda: _protocol._b64decode_strict(obj["delta"])),
    )
    add(
        "ds:   JSON (codec._loads) audio frame",
        lambda: per_call(lambda: _protocol._loads(audio_text)),
    )
    add(
        "ds:   JSON + strict base64, in turn (as decode runs them)",
        # More than the two rows above: the base64 loop runs slower right after a
        # JSON parse than in a loop of its own (measured, not explained here).
        lambda: per_call(
            lambda: _protocol._b64decode_strict(_protocol._loads(audio_text)["delta"])
        ),
    )

    def hook_for(frame: bytes, wire_type: str) -> tuple[Any, Any]:
        """The structure function of a wire type, wherever this version keeps it."""
        decoders = getattr(_protocol, "_DECODERS", None)
        if decoders is not None:
            return decoders[wire_type]
        _protocol.decode(frame)  # hooks built on first use: build it
        cls = _protocol.EVENT_TYPES[wire_type]
        return cls, _protocol._HOOKS[cls]

    def structure_only() -> float:
        cls, hook = hook_for(AUDIO, "response.audio.delta")
        return per_call(lambda: hook(obj, cls))

    add("ds:   cattrs structure (incl. base64)", structure_only)
    tobj = json.loads(text_text)
    add(
        "ds:   JSON (codec._loads) transcript frame",
        lambda: per_call(lambda: _protocol._loads(text_text)),
    )

    def structure_text() -> float:
        cls, hook = hook_for(TEXT, "response.audio_transcript.delta")
        return per_call(lambda: hook(tobj, cls))

    add("ds:   cattrs structure transcript", structure_text)

    def deliver() -> float:
        from dashscope_sync._core.mailbox import Mailbox

        mailbox = Mailbox(N + 10, 1 << 40)  # both bounds on, neither reached
        event = _protocol.decode(AUDIO)
        size = len(AUDIO)
        cost = per_call(lambda: mailbox.deliver(event, 0.0, size), N // 4)
        mailbox.buffer.clear()
        return cost

    add("ds: Mailbox.deliver (state, lock, buffer, notify; no waiter)", deliver)

    def state_only() -> float:
        from dashscope_sync._core.state import SessionState

        state = SessionState()
        event = _protocol.decode(AUDIO)
        return per_call(lambda: state.receive(event, 0.0))

    add("ds:   SessionState.receive (audio delta, no response followed)", state_only)

    def deliver_and_pop() -> float:
        from dashscope_sync._core.mailbox import Mailbox
        from dashscope_sync._deadline import Deadline

        mailbox = Mailbox(4096, 64 << 20)
        event = _protocol.decode(AUDIO)
        size = len(AUDIO)
        deadline = Deadline(None)

        def one() -> None:
            mailbox.deliver(event, 0.0, size)
            mailbox.next_event(deadline, "x")

        return per_call(one)

    add("ds: Mailbox.deliver + next_event (same thread)", deliver_and_pop)

    def dispatch_put() -> float:
        from dashscope_sync._core.dispatch import Dispatcher, Handlers

        handlers = Handlers()
        dispatcher = Dispatcher(handlers, lambda make: None, N + 10, max_backlog_bytes=1 << 40)
        event = _protocol.decode(AUDIO)
        size = len(AUDIO)
        return per_call(lambda: dispatcher.put(event, size), N // 4)

    add("ds: Dispatcher.put (queue for the handler thread)", dispatch_put)

    add("socket.recv(2) syscall (websocket-client does 3 per frame)", syscall_cost)

    def ws_frames() -> float:
        import websocket

        def make(sock: FakeSocket) -> Callable[[], object]:
            ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
            ws.sock = sock
            ws.connected = True
            return ws.recv_frame

        return frames_cost(make)

    add("websocket-client recv_frame (per frame)", ws_frames)

    def ds_transport() -> float:
        import websocket

        from dashscope_sync._core.transport import WebSocketTransport

        def make(sock: FakeSocket) -> Callable[[], object]:
            ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
            ws.sock = sock
            ws.connected = True
            transport = WebSocketTransport(ws)
            return lambda: transport.recv(None)

        return frames_cost(make)

    add("ds: WebSocketTransport.recv (per frame)", ds_transport)

    def floor_recv() -> float:
        import websocket

        def make(sock: FakeSocket) -> Callable[[], object]:
            ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=False)
            ws.sock = sock
            ws.connected = True
            return ws.recv

        return frames_cost(make)

    add("floor: websocket-client ws.recv (per frame, str)", floor_recv)

    def queue_handoff() -> float:
        import queue

        q: queue.Queue[object] = queue.Queue()
        return per_call(lambda: (q.put(1), q.get()))

    add("floor_queue: Queue.put+get (same thread, no wait)", queue_handoff)

    print(
        f"One-thread cost per call, CPU us (thread_time, best of 3, {N} calls; "
        f"frames: {min(4000, N)} from memory, no syscalls):"
    )
    for name, value in rows:
        shown = f"{value:8.2f}" if isinstance(value, float) else f"  {value}"
        print(f"  {name:<62}{shown}")
    if failed:
        print(f"{len(failed)} stage(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
