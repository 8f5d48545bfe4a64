"""Faults over real sockets: breaks at random points mid-response, and keepalive.

Each break kind is tried at seeded random points of a streamed response
(``DASHSCOPE_SYNC_SOAK=1`` multiplies the runs): every event the server
wrote before the break must reach a handler and the iterator, in order, and
then the documented end (clean for 1000, `TransportError` otherwise).
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import (
    OP_PING,
    RawPeer,
    close_frame,
    frame,
    raw_session,
    report,
    soak,
    text,
    wait_sent,
)

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(300), pytest.mark.both_modes]

RUNS = soak(100, 2000)

BREAKS = {
    # kind: (close code the client sees, reason it sees, clean end?)
    "close 1000": (1000, "done", True),
    "close 1001": (1001, "going away", False),
    "close 1011": (1011, "internal error", False),
    "FIN without close frame": (1006, None, False),
    "FIN in the middle of a frame": (1006, None, False),
    "TCP reset": (1006, None, False),
}


def response_frames(rng: random.Random, count: int) -> list[dict[str, object]]:
    """A plausible response: created, then a mix of audio, transcript and text deltas."""
    events: list[dict[str, object]] = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}
    ]
    for i in range(count):
        kind = rng.choice(["audio", "transcript", "text"])
        base = {"response_id": "resp_1", "item_id": "item_1", "output_index": 0}
        if kind == "audio":
            pcm = bytes([i % 256]) * rng.randint(2, 4800)
            events.append(
                {**base, "type": "response.audio.delta", "delta": base64.b64encode(pcm).decode()}
            )
        elif kind == "transcript":
            events.append({**base, "type": "response.audio_transcript.delta", "delta": f"t{i} "})
        else:
            events.append({**base, "type": "response.text.delta", "delta": f"x{i} "})
    return events


def identity(event: ds.ServerEvent) -> tuple[str, object]:
    """What must match between sent and received: the type and the payload."""
    return event.type, getattr(event, "delta", None)


def expected_identity(frame_obj: dict[str, object]) -> tuple[str, object]:
    delta = frame_obj.get("delta")
    if frame_obj["type"] == "response.audio.delta":
        delta = base64.b64decode(str(delta))
    return str(frame_obj["type"]), delta


def run_break(kind: str, seed: int) -> None:
    rng = random.Random(f"{kind}-{seed}")
    events = response_frames(rng, rng.randint(1, 30))
    wires = [text(e) for e in events]
    cut = rng.randint(0, len(wires))  # the break comes after this many frames
    code, reason, clean = BREAKS[kind]
    peer = RawPeer()
    with raw_session(peer) as session:
        handled: list[ds.ServerEvent] = []
        session.on("*", handled.append)
        head = b"".join(wires[:cut])
        if kind.startswith("close"):
            peer.send(head + close_frame(code, str(reason)))
        elif kind == "FIN without close frame":
            peer.send(head)
            peer.fin()
        elif kind == "FIN in the middle of a frame":
            partial = wires[cut] if cut < len(wires) else wires[-1]
            peer.send(head + partial[: rng.randint(1, len(partial) - 1)])
            peer.fin()
        else:
            peer.send(head)
            assert peer.conn is not None
            wait_sent(peer.conn)
            peer.reset()
        pulled: list[ds.ServerEvent] = []
        if clean:
            pulled.extend(session.events(timeout=10))
            assert session.close_code == 1000
        else:
            with pytest.raises(ds.TransportError) as info:
                for event in session.events(timeout=10):
                    pulled.append(event)
            assert info.value.code == code, (kind, seed, info.value)
            if reason is not None:
                assert info.value.reason == reason
            assert session.close_code == code
        session.close()  # handlers finish what was received
    sent = [expected_identity(e) for e in events[:cut]]
    assert [identity(e) for e in pulled] == sent, (kind, seed)
    assert [identity(e) for e in handled] == sent, (kind, seed)


@pytest.mark.parametrize("kind", list(BREAKS))
def test_break_mid_response_delivers_everything_before_it(kind: str) -> None:
    """At seeded random points, every event before the break reaches handler and iterator in order, then the documented end."""
    started = time.monotonic()
    for seed in range(RUNS):
        run_break(kind, seed)
    report(f"break: {kind}", runs=RUNS, seconds=round(time.monotonic() - started, 1))


def test_break_through_the_local_server_knobs() -> None:
    """The local server closing (1001) or dropping mid-response ends the session with that code after the deltas sent."""
    for how, code in (("close", 1001), ("drop", 1006)):
        with LocalRealtimeServer(delta_delay=0.01) as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
                session.create_response()
                session.wait_for(ds.ResponseAudioDelta, timeout=10)
                if how == "close":
                    server.close_connections(1001, "going away")
                else:
                    server.drop_connections()
                with pytest.raises(ds.TransportError) as info:
                    for _ in session.events(timeout=10):
                        pass
                assert info.value.code == code


# Keepalive ------------------------------------------------------------------------------

INTERVAL = 0.5
TIMEOUT = 0.5


def test_half_open_peer_is_detected_within_interval_plus_timeout() -> None:
    """A peer that stops reading and writing (socket open) fails the session within ping_interval + ping_timeout (+2 s slack)."""
    peer = RawPeer(read=False)
    with raw_session(peer, ping_interval=INTERVAL, ping_timeout=TIMEOUT, close_timeout=0.2) as s:
        started = time.monotonic()
        with pytest.raises(ds.TransportError, match="keepalive") as info:
            s.recv(timeout=INTERVAL + TIMEOUT + 10)
        elapsed = time.monotonic() - started
        assert INTERVAL <= elapsed <= INTERVAL + TIMEOUT + 2, elapsed
        report(
            "half-open peer", interval=INTERVAL, timeout=TIMEOUT, detected_after=round(elapsed, 2)
        )
        assert info.value.code == 1011


def test_stalled_local_server_is_detected_by_keepalive() -> None:
    """The local server stalled mid-session (no reads, no pongs) is detected by the client's keepalive in bounded time."""
    with LocalRealtimeServer() as server:
        client = ds.Client(server.api_key, base_url=server.url)
        config = ds.RealtimeConfig(
            model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME,
            ping_interval=INTERVAL,
            ping_timeout=TIMEOUT,
            close_timeout=0.2,
        )
        with client.realtime.connect(config) as session:
            session.wait_for(ds.SessionCreated, timeout=10)
            server.stall()
            started = time.monotonic()
            with pytest.raises(ds.TransportError, match="keepalive"):
                session.recv(timeout=30)
            assert time.monotonic() - started <= INTERVAL + TIMEOUT + 2
            server.resume()


def test_quiet_peer_that_answers_pings_is_never_killed() -> None:
    """A server that sends nothing for many ping intervals but answers pings keeps the session open."""
    peer = RawPeer(answer_pings=True)
    with raw_session(peer, ping_interval=0.2, ping_timeout=0.3) as session:
        with pytest.raises(ds.DashScopeTimeout):
            session.recv(timeout=2.0)  # 10 intervals of silence
        assert not session.closed
        pings = [f for f in peer.client_frames() if f[0] == 0x9]
        assert len(pings) >= 3  # one per interval of silence, give or take a loaded machine
        report("quiet peer", silent_seconds=2.0, pings_answered=len(pings))
        peer.send(text({"type": "response.text.delta", "delta": "still here"}))
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "still here"


def test_slow_trickle_is_not_a_dead_peer() -> None:
    """A frame trickling in a byte at a time, slower than ping_timeout overall, is not mistaken for a dead peer."""
    peer = RawPeer(answer_pings=True)
    with raw_session(peer, ping_interval=0.2, ping_timeout=0.3) as session:
        wire = frame(json.dumps({"type": "response.text.delta", "delta": "slow"}).encode())
        for i in range(len(wire)):
            peer.send(wire[i : i + 1])
            time.sleep(0.02)  # ~1 s for the frame, over 3 ping timeouts
            if i == len(wire) // 2:
                # A stall mid-frame, as a loaded machine makes: the client pings
                # meanwhile, and the peer's pong must wait for the frame's end.
                time.sleep(0.25)
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "slow"
        assert not session.closed
        assert any(opcode == OP_PING for opcode, _ in peer.client_frames())


# The upgrade -----------------------------------------------------------------------------


def _slow_server(reply: Callable[[socket.socket], None]) -> tuple[socket.socket, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(0.5)  # a client that stopped reading ends the test server too
            conn.recv(65536)
            with contextlib.suppress(OSError):
                reply(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def trickle(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 10:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def endless_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 100000000000\r\n\r\n")
    chunk = b"x" * 65536
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        conn.sendall(chunk)
        time.sleep(0.001)


def test_connect_timeout_message_is_rounded() -> None:
    """A server that never answers the upgrade gives a timeout that says 1.5 s, not 1.4999... s."""
    listener = socket.create_server(("127.0.0.1", 0))  # the backlog accepts; nobody answers
    try:
        client = ds.Client("k", base_url=f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        with pytest.raises(ds.DashScopeTimeout, match=r"timed out after 1\.5 s$") as info:
            client.realtime.connect(model="m", timeout=1.5)
        assert info.value.timeout == 1.5  # the limit given, not what was left of it
    finally:
        listener.close()


@pytest.mark.parametrize("reply", [trickle, endless_body], ids=["trickled", "endless body"])
def test_connect_timeout_bounds_the_whole_upgrade(reply: Callable[[socket.socket], None]) -> None:
    """A server that trickles its upgrade response, or streams an endless error body, cannot hold connect() past its timeout."""
    listener, thread = _slow_server(reply)
    try:
        client = ds.Client("k", base_url=f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        started = time.monotonic()
        with pytest.raises(ds.DashScopeTimeout):
            client.realtime.connect(model="m", timeout=1.0)
        assert time.monotonic() - started < 1.0 + 2
    finally:
        listener.close()
        thread.join(20)


def trickled_proxy_reply(conn: socket.socket) -> None:
    """A proxy's CONNECT answer, a byte every 100 ms: each read is quick, the whole is not."""
    head = b"HTTP/1.1 200 Connection established\r\n" + b"X-Pad: slow\r\n" * 5
    for byte in head + b"\r\n":
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def slow_proxy_then_tls_trickle(conn: socket.socket) -> None:
    """A proxy that answers CONNECT after 2.7 s, then a TLS server hello that never ends.

    Each step stays within a 3 s socket timeout: only a deadline over the
    whole connect stops it.
    """
    time.sleep(2.7)
    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    conn.recv(65536)  # the client hello
    conn.sendall(b"\x16\x03\x03\x40\x00")  # a 16 KiB handshake record, announced
    for _ in range(100):
        conn.sendall(b"\x00")
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("reply", "scheme", "timeout"),
    [(trickled_proxy_reply, "ws", 1.0), (slow_proxy_then_tls_trickle, "wss", 3.0)],
    ids=["proxy CONNECT", "proxy CONNECT then TLS"],
)
def test_connect_timeout_bounds_proxy_connect_and_tls_too(
    reply: Callable[[socket.socket], None], scheme: str, timeout: float
) -> None:
    """connect_timeout bounds a slow proxy CONNECT and TLS handshake together, as it bounds the upgrade."""
    listener, thread = _slow_server(reply)
    port = listener.getsockname()[1]
    try:
        client = ds.Client(
            "k",
            # The target behind the proxy is never reached.
            base_url=f"{scheme}://192.0.2.1:9/",
            proxy=f"http://127.0.0.1:{port}",
            connect_timeout=timeout,
        )
        started = time.monotonic()
        with pytest.raises(ds.DashScopeTimeout):
            client.realtime.connect(model="m")
        elapsed = time.monotonic() - started
        assert elapsed < timeout + 2, f"connect() took {elapsed:.1f} s"
    finally:
        listener.close()
        thread.join(20)


def test_a_pong_waits_for_a_user_send_at_most_send_timeout() -> None:
    """A ping that arrives while a user's send is slowly drained waits for it at most send_timeout: then the session fails, instead of the reader waiting for the send to end."""
    send_timeout = 2.0
    peer = RawPeer(read=False)
    stop = threading.Event()  # the drain must end
    draining = threading.Event()  # the user's frame is on its way, the send lock held
    failures: list[BaseException] = []

    with raw_session(peer, send_timeout=send_timeout, ping_interval=None) as session:
        conn = peer.conn
        assert conn is not None

        def drain() -> None:
            # Slowly enough that the 8 MiB append takes many seconds, fast
            # enough that no single socket write waits anywhere near send_timeout.
            got = 0
            while not stop.is_set():
                try:
                    data = conn.recv(8192)
                except OSError:
                    return
                if not data:
                    return
                got += len(data)
                if got > 1 << 20:
                    draining.set()
                stop.wait(0.005)

        def send() -> None:
            try:
                session.append_audio(bytes(8 << 20))
            except BaseException as exc:
                failures.append(exc)

        drainer = threading.Thread(target=drain, name="test-drain", daemon=True)
        sender = threading.Thread(target=send, name="test-sender", daemon=True)
        drainer.start()
        sender.start()
        try:
            assert draining.wait(30)
            assert sender.is_alive(), "the append should still be sending"
            pinged = time.monotonic()
            peer.send(frame(b"are you there", OP_PING))
            with pytest.raises(ds.TransportError) as info:
                session.wait_for(ds.ResponseDone, timeout=30)
            waited = time.monotonic() - pinged
            sender.join(10)
        finally:
            stop.set()
            drainer.join(10)
    assert "control frame waited" in (info.value.reason or ""), info.value
    assert waited < send_timeout + 5.0, f"the session ended {waited:.1f} s after the ping"
    assert len(failures) == 1 and isinstance(failures[0], ds.DashScopeError)
