"""The frame reader against a raw-socket server that writes hand-made frames."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync._core.transport import OP_TEXT, WebSocketTransport

from ._net import RawPeer, frame, wait_sent

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(30), pytest.mark.both_modes]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def text(obj: object) -> bytes:
    return json.dumps(obj).encode()


CREATED = frame(text({"type": "session.created", "session": {"id": "sess_raw"}}))


class RawServer:
    """Accepts one WebSocket upgrade, then writes whatever bytes the test gives it."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.received = bytearray()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.script(conn)
            conn.settimeout(5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()


def connect(
    script: Callable[[socket.socket], None],
) -> Iterator[tuple[ds.RealtimeSession, RawServer]]:
    server = RawServer(script)
    client = ds.Client("k", base_url=f"ws://127.0.0.1:{server.port}/")
    try:
        # The raw server never answers a close frame: don't wait long for it.
        config = ds.RealtimeConfig(model="m", close_timeout=0.2)
        with client.realtime.connect(config, timeout=10) as session:
            yield session, server
    finally:
        server.close()


def test_frames_split_across_reads_and_large_lengths() -> None:
    """Frames arriving byte by byte, and 16- and 64-bit lengths, decode whole."""
    big = {"type": "response.text.delta", "delta": "x" * 70000}
    mid = {"type": "response.text.delta", "delta": "y" * 300}

    def script(conn: socket.socket) -> None:
        data = CREATED + frame(text(mid)) + frame(text(big))
        for i in range(40):  # the first bytes one at a time
            conn.sendall(data[i : i + 1])
        conn.sendall(data[40:])

    for session, _ in connect(script):
        assert session.id == "sess_raw"
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "y" * 300
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "x" * 70000


def test_fragmented_message_with_a_ping_inside() -> None:
    """A fragmented message is reassembled, and a ping between fragments is answered."""
    body = text({"type": "response.text.delta", "delta": "joined"})

    def script(conn: socket.socket) -> None:
        conn.sendall(
            CREATED
            + frame(body[:10], fin=False)
            + frame(b"are you there", opcode=9)
            + frame(body[10:20], opcode=0, fin=False)
            + frame(body[20:], opcode=0)
        )

    for session, server in connect(script):
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "joined"
        session.close()
        server.thread.join(10)
        # The client answered the ping with a (masked) pong before anything else.
        assert server.received[0] == 0x8A


def test_masked_frame_fails_the_connection() -> None:
    """A masked frame from the server fails the connection with 1002, as RFC 6455 5.1 requires."""

    def script(conn: socket.socket) -> None:
        conn.sendall(CREATED + frame(text({"type": "x.masked"}), mask=b"\x01\x02\x03\x04"))

    for session, _ in connect(script):
        with pytest.raises(ds.TransportError, match="masked frame") as info:
            session.wait_for(ds.UnknownEvent, timeout=10)
        assert info.value.code == 1002


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (frame(b"{}", rsv=0x40), "reserved bits"),
        (frame(b"{}", opcode=0), "continuation frame without"),
        (frame(b"{}", fin=False) + frame(b"{}"), "new message inside"),
        (b"\x81\x7f" + struct.pack("!Q", 1 << 40), "larger than max_message_size"),
    ],
)
def test_protocol_errors_end_the_session(bad: bytes, words: str) -> None:
    """A frame that breaks the protocol ends the session with a TransportError."""

    def script(conn: socket.socket) -> None:
        conn.sendall(CREATED + bad)

    for session, _ in connect(script):
        with pytest.raises(ds.TransportError, match=words) as info:
            session.wait_for(ds.ResponseDone, timeout=10)
        assert info.value.code in (1002, 1009)


def test_close_frame_without_status() -> None:
    """A close frame with no status code reports 1005 and ends with a TransportError."""

    def script(conn: socket.socket) -> None:
        conn.sendall(CREATED + frame(b"", opcode=8))

    for session, server in connect(script):
        with pytest.raises(ds.TransportError) as info:
            session.wait_for(ds.ResponseDone, timeout=10)
        assert info.value.code == 1005
        server.thread.join(10)
        # The client's answer carries 1000: 1005 may not be sent on the wire.
        reply = server.received
        assert reply[0] == 0x88
        payload = bytes(b ^ reply[2 + i % 4] for i, b in enumerate(reply[6:8]))
        assert payload == b"\x03\xe8"


def test_eof_without_close_frame() -> None:
    """A socket closed with no close frame is code 1006."""

    def script(conn: socket.socket) -> None:
        conn.sendall(CREATED + frame(text({"type": "response.text.delta", "delta": "a"})))
        conn.shutdown(socket.SHUT_RDWR)

    for session, _ in connect(script):
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "a"
        with pytest.raises(ds.TransportError) as info:
            session.recv(timeout=10)
        assert info.value.code == 1006


def test_read_buffer_grows_for_a_burst_and_shrinks_back() -> None:
    """The socket reads are 16 KiB while idle, 256 KiB while a burst lasts, and 16 KiB again after it."""
    peer = RawPeer(created=False)
    transport = WebSocketTransport.connect(peer.url, {}, timeout=10)
    try:
        peer.wait_upgraded()
        assert peer.conn is not None

        def read_size() -> int:
            # The buffer reads land in: nothing public shows how much one read asks for.
            return len(transport._read)

        assert read_size() == 16 * 1024
        delta = frame(text({"type": "response.audio.delta", "delta": "A" * 4000}))
        # 48 KiB: more than one small read, less than a fresh socket's window.
        count = (48 * 1024) // len(delta)
        peer.send(delta * count)
        wait_sent(peer.conn)  # all of it waits in the client's socket buffer
        sizes = []
        for _ in range(count):
            got = transport.recv(10)
            assert got is not None and got[1] == delta[4:]
            sizes.append(read_size())
        assert sizes[0] == 256 * 1024, "the first full read did not grow the buffer"
        # Then paced traffic: a frame at a time, each read finding one small frame.
        small = frame(text({"type": "response.text.delta", "delta": "x"}))
        for _ in range(3):
            peer.send(small)
            assert transport.recv(10) == (OP_TEXT, small[2:])
        assert read_size() == 16 * 1024, "the buffer stayed large after the burst"
    finally:
        transport.close_socket()
        peer.close()


def test_a_protocol_error_sends_no_close_frame_inside_a_half_sent_frame() -> None:
    """When a reactor's write left a frame half-sent (its rest waiting for room), a hostile
    frame fails the connection without a close frame, whose bytes would land inside it."""
    import selectors

    peer = RawPeer(created=False, read=False)
    # Inherited by the connection it accepts: the client's writes fill up sooner.
    peer.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    transport = WebSocketTransport.connect(peer.url, {}, timeout=10)
    try:
        peer.wait_upgraded()
        conn = peer.conn
        assert conn is not None
        transport.set_nonblocking()
        # More than both socket buffers hold: only part of it fits.
        big = memoryview(transport.frame(OP_TEXT, "x" * (12 << 20)))
        sent = transport.write_some(big)
        assert 0 < sent < len(big)
        got = bytearray()
        while len(got) < sent:  # the peer takes all that was sent: room again
            got += conn.recv(1 << 20)
        peer.send(frame(b"{}", mask=b"abcd"))  # a server frame must not be masked
        # A selector, not select.select: a worker process may hold descriptors past 1024.
        with selectors.DefaultSelector() as ready, pytest.raises(ds.TransportError) as info:
            ready.register(transport.fileno(), selectors.EVENT_READ)
            while True:
                assert ready.select(10)
                transport.read_available()
                transport.next_frame()
        assert info.value.code == 1002
    finally:
        transport.close_socket()
    conn.settimeout(10)
    while data := conn.recv(1 << 20):
        got += data
    peer.close()
    assert len(got) == sent, "bytes were written inside the half-sent frame"
