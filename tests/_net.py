"""Real-socket helpers for the fault and security tests: a raw WebSocket peer,
an HTTP CONNECT proxy and a TLS relay, each on loopback and each on threads.

Nothing here mocks websocket-client, sockets or threads: the library under
test talks to these over real TCP connections.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

import dashscope_sync as ds

_T = TypeVar("_T", bound="_Threaded")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes = b"",
    length: int | None = None,
) -> bytes:
    """Encode one frame as a server (or a misbehaving one) would; ``length`` lies if given."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def text(obj: object) -> bytes:
    """A text frame carrying ``obj`` as JSON."""
    return frame(json.dumps(obj).encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(struct.pack("!H", code) + reason.encode(), OP_CLOSE)


CREATED = text({"type": "session.created", "session": {"id": "sess_raw"}})


def parse_client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what a client wrote into ``(opcode, unmasked payload)``; a partial tail is ignored."""
    return split_frames(data)[0]


def split_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The whole frames at the start of ``data``, and how many bytes they take."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n = b1 & 0x7F
        head = 2
        if n == 126:
            n = struct.unpack("!H", data[pos + 2 : pos + 4])[0]
            head = 4
        elif n == 127:
            n = struct.unpack("!Q", data[pos + 2 : pos + 10])[0]
            head = 10
        mask = data[pos + head : pos + head + 4] if b1 & 0x80 else b""
        head += len(mask)
        end = pos + head + n
        if end > len(data):
            break
        payload = data[pos + head : end]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frames.append((b0 & 0x0F, payload))
        pos = end
    return frames, pos


class _FrameCursor:
    """Follows a stream of server frames written in arbitrary pieces: is it inside one?"""

    def __init__(self) -> None:
        self._head = b""  # the start of a frame header not yet whole
        self._left = 0  # payload bytes of the current frame still to come

    @property
    def inside(self) -> bool:
        return bool(self._head) or self._left > 0

    def advance(self, data: bytes) -> None:
        """Account for ``data``, the next bytes written."""
        pos, end = 0, len(data)
        while pos < end:
            if self._left:
                step = min(self._left, end - pos)
                self._left -= step
                pos += step
                continue
            head = self._head + data[pos : pos + 14]
            size = _header_size(head)
            if size is None:
                self._head, pos = head, end
                break
            used = size - len(self._head)
            self._head = b""
            pos += used
            self._left = _payload_length(head)


def _header_size(head: bytes) -> int | None:
    """How long the frame header at the start of ``head`` is, or None if it is not all there."""
    if len(head) < 2:
        return None
    n = head[1] & 0x7F
    size = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if head[1] & 0x80 else 0)
    return size if len(head) >= size else None


def _payload_length(head: bytes) -> int:
    n = head[1] & 0x7F
    if n == 126:
        return int(struct.unpack("!H", head[2:4])[0])
    if n == 127:
        return int(struct.unpack("!Q", head[2:10])[0])
    return n


class RawPeer:
    """A WebSocket server on a bare socket: one client, the upgrade, then bytes the test writes.

    It reads (and records) what the client writes on a thread of its own;
    with ``answer_pings`` it answers pings, with ``echo_close`` it answers a
    close frame and closes. ``read=False`` makes a half-open peer: after
    the upgrade it neither reads nor writes. Thread safety: `send` and the
    break methods are called from the test thread only.

    Its pongs go between the frames the test writes, never inside one that
    the test writes in pieces (a real server does not split its own frames).
    """

    def __init__(
        self,
        *,
        created: bool = True,
        answer_pings: bool = False,
        echo_close: bool = True,
        read: bool = True,
    ) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.created = created
        self.answer_pings = answer_pings
        self.echo_close = echo_close
        self.read = read
        self.conn: socket.socket | None = None
        # Guards `received`, `_outgoing`, `_held_pongs` and writes to `conn`
        # (the test and the reader thread both write).
        self.lock = threading.Lock()
        # Where the test's writes stand in the frames they carry.
        self._outgoing = _FrameCursor()
        # Pongs owed while the test is inside a frame, sent once it ends.
        self._held_pongs: list[bytes] = []
        # Notified when more of the client's bytes are in `received`.
        self.arrived = threading.Condition(self.lock)
        self.received = bytearray()
        self.upgraded = threading.Event()
        self.client_closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="test-raw-peer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn = conn
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        reply = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        with self.lock:
            conn.sendall(reply + (CREATED if self.created else b""))
        self.upgraded.set()
        if not self.read:
            return  # half-open: the socket stays open, nobody reads or writes
        seen = 0
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            with self.lock:
                self.received += chunk
                frames = parse_client_frames(bytes(self.received))
                self.arrived.notify_all()
            for opcode, payload in frames[seen:]:
                if opcode == OP_PING and self.answer_pings:
                    self._pong(payload)
                elif opcode == OP_CLOSE:
                    self.client_closed.set()
                    if self.echo_close:
                        self._write(frame(payload[:2], OP_CLOSE))
                        with contextlib.suppress(OSError):
                            conn.shutdown(socket.SHUT_RDWR)
            seen = len(frames)
        self.client_closed.set()

    def _pong(self, payload: bytes) -> None:
        """Answer a ping now, or at the end of the frame the test is writing."""
        with self.lock, contextlib.suppress(OSError):
            if self._outgoing.inside:
                self._held_pongs.append(frame(payload, OP_PONG))
                return
            assert self.conn is not None
            self.conn.sendall(frame(payload, OP_PONG))

    def _write(self, data: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            assert self.conn is not None
            self.conn.sendall(data)

    def wait_upgraded(self) -> None:
        assert self.upgraded.wait(10), "the client never completed the upgrade"

    def send(self, data: bytes) -> None:
        """Write raw bytes to the client."""
        self.wait_upgraded()
        assert self.conn is not None
        with self.lock:
            self.conn.sendall(data)
            if self.answer_pings:
                self._outgoing.advance(data)
                if self._held_pongs and not self._outgoing.inside:
                    self.conn.sendall(b"".join(self._held_pongs))
                    self._held_pongs.clear()

    def fin(self) -> None:
        """Close the write side: a FIN with no close frame."""
        assert self.conn is not None
        self.conn.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Abort the connection with a TCP reset (SO_LINGER 0, then close)."""
        assert self.conn is not None
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Wake our own reader first (SHUT_RD sends nothing): a socket closed
        # while another thread is blocked in recv() is only released, and the
        # RST only sent, once that recv() returns.
        self.conn.shutdown(socket.SHUT_RD)
        self.thread.join(5)
        self.conn.close()

    def client_frames(self) -> list[tuple[int, bytes]]:
        with self.lock:
            return parse_client_frames(bytes(self.received))

    def wait_for_frame(self, opcode: int, payload: bytes, timeout: float = 10) -> bool:
        """Wait up to ``timeout`` for the client to send this frame; whether it did."""
        wanted = (opcode, payload)
        with self.arrived:
            return self.arrived.wait_for(
                lambda: wanted in parse_client_frames(bytes(self.received)), timeout
            )

    def client_close_code(self, timeout: float = 10) -> int | None:
        """The code of the close frame the client sent, waiting up to ``timeout``."""
        self.client_closed.wait(timeout)
        for opcode, payload in self.client_frames():
            if opcode == OP_CLOSE and len(payload) >= 2:
                return int(struct.unpack("!H", payload[:2])[0])
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() if nobody came
        self.listener.close()
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.close()
        self.thread.join(10)


@contextlib.contextmanager
def raw_session(
    peer: RawPeer, reactor: ds.Reactor | None = None, **config: object
) -> Iterator[ds.RealtimeSession]:
    """A session connected to ``peer`` (``session.created`` already pulled), closed
    afterwards; read by ``reactor`` if given (shared mode)."""
    options: dict[str, object] = {"model": "m", "close_timeout": 1.0}
    options.update(config)
    # Given only when set: in shared mode the test's reactor is the default.
    client = (
        ds.Client("k", base_url=peer.url)
        if reactor is None
        else ds.Client("k", base_url=peer.url, reactor=reactor)
    )
    try:
        with client.realtime.connect(ds.RealtimeConfig(**options), timeout=10) as session:  # type: ignore[arg-type]
            if peer.created and options.get("max_buffered_events") != 0:
                session.wait_for(ds.SessionCreated, timeout=10)
            yield session
    finally:
        peer.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes from ``src`` to ``dst`` until EOF, then pass the EOF on."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _pipe(a: socket.socket, b: socket.socket, owner: _Threaded) -> None:
    """Copy bytes both ways (a thread per direction) until both sides are done."""
    owner.sockets += [a, b]
    back = threading.Thread(target=_copy, args=(b, a), name="test-pipe", daemon=True)
    back.start()
    _copy(a, b)
    back.join(30)


class _Threaded:
    """Accepts on a loopback listener, one thread per connection; `close` joins them all."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.accepted = 0
        self.acceptor = threading.Thread(target=self._accept, name="test-acceptor", daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            self.sockets.append(conn)
            thread = threading.Thread(
                target=self._handle_safely, args=(conn,), name="test-conn", daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.acceptor.join(10)
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self.threads:
            thread.join(10)

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConnectProxy(_Threaded):
    """An HTTP CONNECT proxy on loopback, recording each request head.

    With ``credentials`` it answers 407 unless ``Proxy-Authorization: Basic``
    carries them; with ``silent`` it accepts and never answers (a hung proxy).
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None, silent: bool = False) -> None:
        self.credentials = credentials
        self.silent = silent
        self.requests: list[bytes] = []
        super().__init__()

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        head = read_head(conn)
        if head is None:
            return
        head, _, rest = head.partition(b"\r\n\r\n")
        self.requests.append(head)
        if self.silent:
            self.stop.wait(30)
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.credentials is not None:
            expected = base64.b64encode(":".join(self.credentials).encode()).decode()
            given = [
                line.split(":", 1)[1].strip()
                for line in lines[1:]
                if line.lower().startswith("proxy-authorization:")
            ]
            if given != [f"Basic {expected}"]:
                conn.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                return
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        conn.settimeout(None)
        _pipe(conn, upstream, self)


class TLSRelay(_Threaded):
    """Terminates TLS on loopback with ``context`` and relays the plain bytes to ``target``."""

    def __init__(self, context: ssl.SSLContext, target: tuple[str, int]) -> None:
        self.context = context
        self.target = target
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate: that is the point of some tests
        upstream = socket.create_connection(self.target, timeout=10)
        tls.settimeout(None)
        _pipe(tls, upstream, self)


#: ``DASHSCOPE_SYNC_SOAK=1`` runs the long versions of the fault and leak
#: tests (by hand; their figures are on the docs' Guarantees page, docs/guarantees.md).
SOAK = os.environ.get("DASHSCOPE_SYNC_SOAK") == "1"


def read_head(conn: socket.socket) -> bytes | None:
    """Read an HTTP request up to its blank line (and what came with it); None on EOF."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        head += chunk
    return head


def report(name: str, **figures: object) -> None:
    """Print figures for the docs' Guarantees page (visible with ``pytest -s``)."""
    shown = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\n[guarantees] {name}: {shown}", file=sys.stderr)


def soak(ci: int, full: int) -> int:
    """``ci`` repetitions in the normal suite, ``full`` under ``DASHSCOPE_SYNC_SOAK=1``."""
    return full if SOAK else ci


def wait_sent(sock: socket.socket, timeout: float = 5.0) -> None:
    """Wait until the kernel has handed everything written on ``sock`` to the peer (Linux)."""
    deadline = time.monotonic() + timeout
    try:
        import fcntl
        import termios

        while time.monotonic() < deadline:
            unsent = struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]
            if unsent == 0:
                return
            time.sleep(0.005)
    except (ImportError, OSError):
        time.sleep(0.2)


class MiniServer(_Threaded):
    """A minimal realtime server that records nothing, so the process's memory is the client's.

    Each connection: the upgrade (or, with ``reject``, an HTTP 401 with a JSON
    body), ``session.created``, then it reads until the client's close frame
    and answers it.
    """

    def __init__(self, *, reject: bool = False) -> None:
        self.reject = reject
        super().__init__()
        self.url = f"ws://127.0.0.1:{self.port}/"

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        request = read_head(conn)
        if request is None:
            return
        if self.reject:
            body = (
                b'{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}'
            )
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            return
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + CREATED
        )
        pending = b""
        while chunk := conn.recv(262144):
            frames, used = split_frames(pending + chunk)
            pending = (pending + chunk)[used:]
            for opcode, payload in frames:
                if opcode == OP_CLOSE:
                    conn.sendall(frame(payload[:2], OP_CLOSE))
                    return

    def _handle_safely(self, conn: socket.socket) -> None:
        super()._handle_safely(conn)
        # Forget finished connections, so a long soak holds no per-connection state.
        with contextlib.suppress(ValueError):
            self.sockets.remove(conn)
        current = threading.current_thread()
        with contextlib.suppress(ValueError):
            self.threads.remove(current)
