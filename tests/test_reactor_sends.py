"""Shared mode: what the reactor's thread must send never makes it wait.

The state machine decides some sends on the thread that reads (a cancel
asked for before its response started, pongs); on a reactor's thread those go
through the connection's outbox (so do an interrupted reply's item replacement and
pongs). Each test here stalls one session's peer (it
stops reading) while another session on the same reactor must keep answering,
over real loopback sockets: a `RawPeer` for the stalled one, the local server
for the healthy one.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, RawPeer, frame, raw_session, text

pytestmark = pytest.mark.timeout(120)

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
#: A family whose sessions replace a cut reply's item (interrupt(truncate=True)).
AUDIO_MODEL = ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS
#: Bigger than any socket buffer pair on loopback: a send of it holds the send
#: lock until the peer reads most of it.
BIG_AUDIO = 8 << 20
#: The largest payload of a control frame.
PING_PAYLOAD = 125


@pytest.fixture
def reactor() -> Iterator[ds.Reactor]:
    with ds.Reactor() as shared:
        yield shared


def connect(server: LocalRealtimeServer, reactor: ds.Reactor) -> ds.RealtimeSession:
    client = ds.Client(server.api_key, base_url=server.url, reactor=reactor)
    return client.realtime.connect(model=MODEL, timeout=10)


def stalling_peer() -> RawPeer:
    """A peer that reads nothing after the upgrade, with a receive buffer as small
    as the system allows (so the client's writes fill up after its own send buffer)."""
    peer = RawPeer(read=False)
    # Inherited by the connection it accepts (the client connects after this).
    peer.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return peer


def send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to here (bytes)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


class Drain:
    """Reads what the client writes to a stalled `RawPeer`, when the test says so.

    Records the client's frames in order as ``(opcode, payload)``, where a
    payload over 4 KiB is kept as its length only (unmasking megabytes of
    audio in Python would take minutes). Thread safety: `read_until` and
    `frames` from the test thread; the reading runs on its own thread.
    """

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        # Guards _limit, _got, _frames and _buffer; notified as they change.
        self._cond = threading.Condition()
        self._limit: int | None = 0  # read until this many bytes (None: no limit)
        self._got = 0
        self._frames: list[tuple[int, bytes | int]] = []
        self._buffer = bytearray()
        self._stop = threading.Event()  # the test ends: stop reading
        self._thread = threading.Thread(target=self._run, name="test-drain", daemon=True)
        self._thread.start()

    def read_until(self, limit: int | None) -> None:
        """Read up to ``limit`` bytes in all (None: everything from now on)."""
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def wait_got(self, count: int, timeout: float = 30) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._got >= count, timeout)

    def wait_frame(self, opcode: int, match: bytes, timeout: float = 30) -> bool:
        """Wait for a frame of ``opcode`` whose payload contains ``match``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(
                    op == opcode and isinstance(p, bytes) and match in p for op, p in self._frames
                ),
                timeout,
            )

    def frames(self) -> list[tuple[int, bytes | int]]:
        with self._cond:
            return list(self._frames)

    def close(self) -> None:
        self._stop.set()
        self.read_until(None)
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(
                    lambda: self._limit is None or self._got < self._limit or self._stop.is_set()
                )
                want = 65536 if self._limit is None else min(65536, self._limit - self._got)
            if self._stop.is_set() or want <= 0:
                continue
            try:
                data = self._conn.recv(want)
            except OSError:
                return
            if not data:
                return
            with self._cond:
                self._got += len(data)
                self._buffer += data
                self._parse()
                self._cond.notify_all()

    def _parse(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            n = buffer[1] & 0x7F
            head = 2
            if n == 126:
                if len(buffer) < 4:
                    return
                n, head = struct.unpack("!H", buffer[2:4])[0], 4
            elif n == 127:
                if len(buffer) < 10:
                    return
                n, head = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) < head + 4 + n:
                return
            mask = bytes(buffer[head : head + 4])
            start = head + 4
            payload: bytes | int = n
            if n <= 4096:
                masked = int.from_bytes(buffer[start : start + n], "big")
                key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
                payload = (masked ^ key).to_bytes(n, "big")
            self._frames.append((buffer[0] & 0x0F, payload))
            del buffer[: start + n]


def text_types(frames: list[tuple[int, bytes | int]]) -> list[str]:
    """The client's text frames in order: each one's ``type`` (``big`` for a large one)."""
    types = []
    for opcode, payload in frames:
        if opcode == OP_TEXT:
            types.append("big" if isinstance(payload, int) else json.loads(payload)["type"])
    return types


class BigSend(threading.Thread):
    """Sends `BIG_AUDIO` bytes of audio in one frame; what it raised, in ``failures``."""

    def __init__(self, session: ds.RealtimeSession) -> None:
        super().__init__(name="test-big-send", daemon=True)
        self.session = session
        self.failures: list[BaseException] = []

    def run(self) -> None:
        try:
            self.session.append_audio(bytes(BIG_AUDIO))
        except BaseException as exc:
            self.failures.append(exc)


def stuck_send(session: ds.RealtimeSession, drain: Drain) -> BigSend:
    """Start a big send and return once it holds the session's send lock, stuck."""
    sender = BigSend(session)
    sender.start()
    # Once part of the big frame is read, its send holds the send lock, and cannot
    # finish: the rest is larger than both socket buffers.
    drain.read_until(1 << 20)
    assert drain.wait_got(1 << 20)
    return sender


def test_a_cancel_behind_a_stuck_send_waits_for_it_without_stalling_the_reactor(
    server: LocalRealtimeServer, reactor: ds.Reactor
) -> None:
    """A cancel the reader must send while a user's send is stuck on a peer that stopped
    reading waits in the outbox: another session on the same reactor keeps answering
    meanwhile, and the cancel goes after the stuck frame and before the next user send."""
    healthy = connect(server, reactor)
    peer = stalling_peer()
    with raw_session(peer, reactor, send_timeout=60.0, ping_interval=None) as stalled:
        assert peer.conn is not None
        drain = Drain(peer.conn)
        try:
            response = stalled.create_response()
            assert response.cancel()  # before response.created: the reader sends it later
            sender = stuck_send(stalled, drain)
            peer.send(
                text(
                    {
                        "type": "response.created",
                        "response": {"id": "resp_1", "status": "in_progress"},
                    }
                )
            )
            assert healthy.respond(text="still there?", timeout=30).status == "completed"
            assert sender.is_alive(), "the big send should still be stuck"
            drain.read_until(None)
            sender.join(60)
            assert not sender.is_alive()
            assert not sender.failures, sender.failures
            stalled.append_text("after the cancel")
            assert drain.wait_frame(OP_TEXT, b"after the cancel")
        finally:
            drain.close()
        types = text_types(drain.frames())
        assert types[-4:] == [
            "response.create",
            "big",
            "response.cancel",
            "conversation.item.create",
        ], types
    healthy.close()


def flood_pings(peer: RawPeer) -> int:
    """Send pings whose pongs are more than the client's socket can hold; how many."""
    count = send_buffer_max() // (PING_PAYLOAD + 6) + 4000
    batch = b"".join(
        frame(i.to_bytes(8, "big") + bytes(PING_PAYLOAD - 8), OP_PING) for i in range(1000)
    )
    for _ in range(count // 1000):
        peer.send(batch)
    peer.send(frame(b"last".ljust(PING_PAYLOAD, b"."), OP_PING))
    peer.send(text({"type": "test.after_the_pings"}))
    return count // 1000 * 1000 + 1


def test_pongs_wait_in_the_outbox_until_the_peer_reads_again(
    server: LocalRealtimeServer, reactor: ds.Reactor
) -> None:
    """Pongs for a peer that pings but stops reading wait in the outbox (the latest one
    only) while another session answers, and go once the peer reads again."""
    healthy = connect(server, reactor)
    peer = stalling_peer()
    with raw_session(peer, reactor, send_timeout=60.0, ping_interval=None) as stalled:
        assert peer.conn is not None
        drain = Drain(peer.conn)
        try:
            sent = flood_pings(peer)
            assert healthy.respond(text="still there?", timeout=30).status == "completed"
            # Every ping was read, and its pong written or left in the outbox.
            marker = stalled.recv(timeout=30)
            assert marker is not None and marker.type == "test.after_the_pings"
            drain.read_until(None)
            assert drain.wait_frame(OP_PONG, b"last"), "the last pong never came"
        finally:
            drain.close()
        pongs = sum(1 for opcode, _ in drain.frames() if opcode == OP_PONG)
        assert pongs < sent  # the socket was full: pongs waiting were answered by the latest
        stalled.append_text("the session is fine")  # raises if it failed
    healthy.close()


def reply_events(step: str, words: str = "Once upon a time ") -> list[dict[str, object]]:
    """A scripted audio reply (``resp_1``, item ``item_a``) starting with ``words``: its
    start, or its cancelled end."""
    at = {"response_id": "resp_1", "item_id": "item_a", "output_index": 0, "content_index": 0}
    if step == "start":
        audio = base64.b64encode(bytes(24000)).decode()  # half a second at 24 kHz, 16 bit
        user = {"id": "item_u", "type": "message", "role": "user", "content": []}
        return [
            {"type": "conversation.item.created", "previous_item_id": None, "item": user},
            {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
            {
                "type": "conversation.item.created",
                "previous_item_id": "item_u",
                "item": {"id": "item_a", "type": "message", "role": "assistant", "content": []},
            },
            {
                "type": "response.output_item.added",
                "response_id": "resp_1",
                "output_index": 0,
                "item": {"id": "item_a", "type": "message", "role": "assistant", "content": []},
            },
            {"type": "response.content_part.added", **at, "part": {"type": "audio"}},
            {"type": "response.audio_transcript.delta", **at, "delta": words},
            {"type": "response.audio.delta", **at, "delta": audio},
            {"type": "response.audio_transcript.delta", **at, "delta": "there was a king."},
            {"type": "response.audio.delta", **at, "delta": audio},
        ]
    return [
        {
            "type": "response.done",
            "response": {"id": "resp_1", "status": "cancelled", "output": []},
        }
    ]


def test_a_truncation_behind_a_stuck_send_waits_for_it_without_stalling_the_reactor(
    server: LocalRealtimeServer, reactor: ds.Reactor
) -> None:
    """The item delete of interrupt(truncate=True), due when the cut reply ends while a
    user's send is stuck on a peer that stopped reading, waits in the outbox: another
    session keeps answering; the delete goes after the stuck frame, the re-create once
    the server deleted the item, and the program's next item after both."""
    healthy = connect(server, reactor)
    peer = stalling_peer()
    with raw_session(
        peer, reactor, model=AUDIO_MODEL, send_timeout=60.0, ping_interval=None
    ) as stalled:
        assert peer.conn is not None
        drain = Drain(peer.conn)
        try:
            stalled.create_response()
            peer.send(b"".join(text(event) for event in reply_events("start")))
            stalled.wait_for(ds.ResponseAudioDelta, timeout=30)
            stalled.interrupt(truncate=True)  # the cut reply has not ended: deleted at its end
            sender = stuck_send(stalled, drain)
            peer.send(b"".join(text(event) for event in reply_events("end")))
            assert healthy.respond(text="still there?", timeout=30).status == "completed"
            assert sender.is_alive(), "the big send should still be stuck"
            drain.read_until(None)
            assert drain.wait_frame(OP_TEXT, b'"conversation.item.delete"')
            sender.join(60)
            assert not sender.failures, sender.failures
            peer.send(text({"type": "conversation.item.deleted", "item_id": "item_a"}))
            stalled.append_text("after the truncation")  # waits for the re-create
            assert drain.wait_frame(OP_TEXT, b"after the truncation")
        finally:
            drain.close()
        types = text_types(drain.frames())
        assert types[-4:] == [
            "big",
            "conversation.item.delete",
            "conversation.item.create",
            "conversation.item.create",
        ], types
        heard = [p for op, p in drain.frames() if op == OP_TEXT and isinstance(p, bytes)][-2]
        assert b'"assistant"' in heard and b"Once upon a time" in heard
    healthy.close()


def test_an_outbox_that_cannot_drain_fails_only_its_session(
    server: LocalRealtimeServer, reactor: ds.Reactor
) -> None:
    """A re-create larger than the socket can hold, for a peer that reads nothing, fails
    its session once it has not moved for send_timeout (thread mode's stuck-send reason);
    the other session answers meanwhile, and after."""
    healthy = connect(server, reactor)
    peer = RawPeer(read=False)
    # More than the client's send buffer and the peer's receive buffer hold together.
    words = "word " * (send_buffer_max() // 5 * 2)
    with raw_session(
        peer, reactor, model=AUDIO_MODEL, send_timeout=5.0, ping_interval=None
    ) as stalled:
        stalled.create_response()
        peer.send(b"".join(text(event) for event in reply_events("start", words)))
        stalled.wait_for(ds.ResponseAudioDelta, timeout=30)
        stalled.interrupt(truncate=True)  # heard: all of it (all its audio arrived)
        peer.send(b"".join(text(event) for event in reply_events("end")))
        peer.send(text({"type": "conversation.item.deleted", "item_id": "item_a"}))
        assert healthy.respond(text="still there?", timeout=30).status == "completed"
        assert not stalled.closed  # the stuck re-create did not hold the reactor 5 s
        with pytest.raises(ds.TransportError) as info:
            stalled.wait_for(ds.SessionUpdated, timeout=60)
        assert info.value.code == 1011
        assert "sending timed out after 5 s: the server is not reading" in (
            info.value.reason or ""
        ), info.value
    assert healthy.respond(text="and now?", timeout=30).status == "completed"
    healthy.close()


def test_a_close_from_the_reactor_behind_a_stuck_send_goes_after_it(reactor: ds.Reactor) -> None:
    """A Qwen-Audio server_error ends the session on the reactor's thread while a user's
    send holds the send lock: the close frame is not skipped but goes right after that send."""
    peer = stalling_peer()
    with raw_session(
        peer, reactor, model=AUDIO_MODEL, send_timeout=60.0, ping_interval=None
    ) as stalled:
        assert peer.conn is not None
        drain = Drain(peer.conn)
        try:
            sender = stuck_send(stalled, drain)
            error = {"type": "server_error", "code": "internal_error", "message": "crashed"}
            peer.send(text({"type": "error", "event_id": "e1", "error": error}))
            with pytest.raises(ds.APIError, match="crashed"):
                stalled.wait_for(ds.ResponseDone, timeout=30)
            assert sender.is_alive(), "the big send should still be stuck"
            drain.read_until(None)
            sender.join(60)
            assert not sender.is_alive()
            assert drain.wait_frame(OP_CLOSE, b""), "no close frame after the stuck send"
        finally:
            drain.close()
        frames = drain.frames()
        assert [op for op, _ in frames[-2:]] == [OP_TEXT, OP_CLOSE]
        assert frames[-1][1] == struct.pack("!H", 1000)


class RecordingLoop:
    """A reader loop that records what a connection asks of it (the test's thread is
    its reading thread); it reads nothing itself."""

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.calls: list[tuple[str, object]] = []

    def add(self, connection: object) -> None:
        self.calls.append(("add", None))

    def forget(self, connection: object) -> None:
        self.calls.append(("forget", None))

    def schedule(self, connection: object, when: float) -> None:
        self.calls.append(("schedule", when))

    def want_write(self, connection: object, on: bool) -> None:
        self.calls.append(("want_write", on))

    def flush_soon(self, connection: object) -> None:
        self.calls.append(("flush_soon", None))


def test_a_send_holding_the_lock_stops_the_watch_for_room() -> None:
    """A frame the reader posts while a user's send holds the send lock stops the watch
    for room (a socket with room would wake the reader at every select to fail the lock
    again) and leaves it to a timer and the send's end."""
    from dashscope_sync._core.connection import Connection
    from dashscope_sync._core.transport import WebSocketTransport

    peer = RawPeer(created=False)
    transport = WebSocketTransport.connect(peer.url, {}, timeout=10)
    loop = RecordingLoop()
    connection = Connection(
        transport,
        on_event=lambda event, size: None,
        on_end=lambda code, reason, error: None,
        ping_interval=None,
        ping_timeout=None,
        send_timeout=10.0,
        reactor=loop,
    )
    try:
        connection.start()
        with connection._send_lock:  # a user's send in progress
            assert connection.send('{"type":"response.cancel"}')  # on the reader: posted
            assert ("want_write", False) in loop.calls
            assert ("want_write", True) not in loop.calls
            assert any(call == "schedule" for call, _ in loop.calls)
        connection.writable(0.0)  # the send's end: flush_soon has the reader write it
        assert peer.wait_for_frame(OP_TEXT, b'{"type":"response.cancel"}')
    finally:
        connection.abort()
        transport.close_socket()
        peer.close()
