"""Hostile and broken frames over a real socket: protocol violations fail the
connection with the right close code, bad frames become exactly one event each.

The peer is a raw WebSocket server on loopback (``tests/_net.py``) writing
hand-made bytes; only the public API is used on the client side.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    RawPeer,
    close_frame,
    frame,
    raw_session,
    report,
    text,
)

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]

BEFORE = text({"type": "response.text.delta", "delta": "before"})
SENTINEL = {"type": "x.sentinel"}


# Protocol violations ------------------------------------------------------------------

VIOLATIONS = [
    ("RSV1 set", frame(b"{}", rsv=0x40), 1002, "reserved bits"),
    ("RSV2 set", frame(b"{}", rsv=0x20), 1002, "reserved bits"),
    ("RSV3 set", frame(b"{}", rsv=0x10), 1002, "reserved bits"),
    ("orphan continuation", frame(b"{}", OP_CONT), 1002, "continuation frame without"),
    (
        "new message inside a fragmented one",
        frame(b"{", fin=False) + frame(b"{}"),
        1002,
        "new message inside",
    ),
    *[
        (f"reserved opcode 0x{op:X}", frame(b"{}", op), 1002, f"reserved opcode 0x{op:X}")
        for op in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)
    ],
    ("fragmented ping", frame(b"x", OP_PING, fin=False), 1002, "fragmented control frame"),
    ("ping of 126 bytes", frame(b"x" * 126, OP_PING), 1002, "control frame of 126 bytes"),
    (
        "close frame of 300 bytes",
        frame(b"\x03\xe8" + b"x" * 298, OP_CLOSE),
        1002,
        "control frame of 300 bytes",
    ),
    ("masked server frame", frame(b"{}", mask=b"abcd"), 1002, "masked frame"),
    (
        "length with the top bit set",
        b"\x81\x7f" + struct.pack("!Q", 1 << 63),
        1002,
        "most significant bit",
    ),
    (
        "absurd 64-bit length",
        b"\x81\x7f" + struct.pack("!Q", (1 << 63) - 1),
        1009,
        "larger than max_message_size",
    ),
    ("1 TiB frame", b"\x82\x7f" + struct.pack("!Q", 1 << 40), 1009, "larger than"),
]


@pytest.mark.parametrize(
    ("bad", "code", "words"),
    [pytest.param(bad, code, words, id=name) for name, bad, code, words in VIOLATIONS],
)
def test_protocol_violation_fails_the_connection(bad: bytes, code: int, words: str) -> None:
    """A frame that breaks RFC 6455 ends the session with a TransportError and a close frame of the right code, after the events before it."""
    peer = RawPeer()
    with raw_session(peer) as session:
        seen: list[ds.ServerEvent] = []
        session.on("*", seen.append)
        peer.send(BEFORE + bad)
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "before"
        started = time.monotonic()
        with pytest.raises(ds.TransportError, match=words) as info:
            session.recv(timeout=10)
        assert time.monotonic() - started < 5
        assert info.value.code == code
        assert session.close_code == code
        # The client told the server why, as RFC 6455 7.1.7 asks.
        assert peer.client_close_code() == code
        session.close()  # lets the handler finish what was received
        assert [e.type for e in seen] == ["response.text.delta"]


def test_fragmented_message_over_the_limit_is_refused() -> None:
    """A message is measured across its fragments: one byte over max_message_size is 1009, exactly at it is delivered."""
    delta = json.dumps({"type": "response.text.delta", "delta": "x" * 980}).encode()
    assert len(delta) == 1024
    peer = RawPeer()
    with raw_session(peer, max_message_size=1024) as session:
        parts = [delta[i : i + 300] for i in range(0, 1024, 300)]
        exact = frame(parts[0], fin=False)
        exact += b"".join(frame(p, OP_CONT, fin=False) for p in parts[1:-1])
        exact += frame(parts[-1], OP_CONT)
        peer.send(exact)
        assert len(session.wait_for(ds.ResponseTextDelta, timeout=10).delta) == 980
        over = frame(b" " + parts[0], fin=False)
        over += b"".join(frame(p, OP_CONT, fin=False) for p in parts[1:-1])
        over += frame(parts[-1], OP_CONT)
        peer.send(over)
        with pytest.raises(ds.TransportError, match="1025 bytes is larger") as info:
            session.recv(timeout=10)
        assert info.value.code == 1009
        assert peer.client_close_code() == 1009


def test_endless_fragments_stop_at_the_default_limit() -> None:
    """A server streaming 64 MiB of continuation frames is cut off at the 16 MiB default, without buffering the rest."""
    peer = RawPeer()
    chunk = b"x" * (1 << 20)

    def flood() -> None:
        with contextlib.suppress(OSError):
            peer.send(frame(b'{"type":"response.text.delta","delta":"', fin=False))
            for _ in range(64):
                peer.send(frame(chunk, OP_CONT, fin=False))

    tracemalloc.start()
    try:
        with raw_session(peer) as session:
            sender = threading.Thread(target=flood)
            sender.start()
            with pytest.raises(ds.TransportError, match="larger than max_message_size") as info:
                session.wait_for(ds.ResponseTextDelta, timeout=30)
            assert info.value.code == 1009
            sender.join(30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The fragments held before the refusal (16 MiB) plus working buffers;
    # without the limit all 64 MiB would be reassembled.
    assert peak < 40 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_tiny_fragments_cost_their_bytes_not_an_object_each() -> None:
    """A message in 50 000 one-byte fragments (and as many empty ones) is reassembled whole, holding its bytes, not an object per fragment."""
    body = json.dumps({"type": "response.text.delta", "delta": "z" * 50_000}).encode()
    wire = bytearray(frame(body[:1], fin=False))
    for i in range(1, len(body) - 1):
        wire += frame(body[i : i + 1], OP_CONT, fin=False) + frame(b"", OP_CONT, fin=False)
    wire += frame(body[-1:], OP_CONT)
    peer = RawPeer()
    with raw_session(peer) as session:
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            peer.send(bytes(wire))
            event = session.wait_for(ds.ResponseTextDelta, timeout=60)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert event.delta == "z" * 50_000
    # The wire bytes the test holds, the message twice, the read buffer; a
    # list of 400 000 parts would add 400 000 slots and 200 000 objects (~10 MB).
    assert peak < len(wire) + 4 * len(body) + (2 << 20), f"peak {peak / 2**20:.1f} MiB"


# Bad frames -------------------------------------------------------------------------

DEEP = b'{"type":"x.deep","a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

BAD_TEXT = {
    "not JSON": b"{not json",
    "truncated JSON": b'{"type":"response.text.delta","delta":"abc',
    "an array": b'[{"type":"response.text.delta"}]',
    "a string": b'"response.done"',
    "a number": b"12",
    "null": b"null",
    "no type": b'{"delta":"x"}',
    "type is a number": b'{"type":5}',
    "type is null": b'{"type":null}',
    "type is an object": b'{"type":{"a":1}}',
    "session is a string": b'{"type":"session.created","session":"x"}',
    "session is a list": b'{"type":"session.updated","session":[1,2]}',
    "response is a list": b'{"type":"response.done","response":[1]}',
    "output is a string": b'{"type":"response.done","response":{"output":"x"}}',
    "error is a string": b'{"type":"error","error":"boom"}',
    "item is a number": b'{"type":"conversation.item.created","item":7}',
    "audio delta not base64": b'{"type":"response.audio.delta","delta":"%%%not base64%%%"}',
    "audio delta a number": b'{"type":"response.audio.delta","delta":5}',
    "audio delta bad padding": b'{"type":"response.audio.delta","delta":"AAA"}',
    "invalid UTF-8": b'{"type":"response.text.delta","delta":"\xff\xfe\xfd"}',
    "lone surrogate bytes": b'{"type":"response.text.delta","delta":"\xed\xa0\x80"}',
    "deeply nested (100000 levels)": DEEP,
    "8 MiB of garbage": b"x" * (8 << 20),
}


@contextlib.contextmanager
def collecting(session: ds.RealtimeSession) -> Iterator[list[ds.ServerEvent]]:
    """Events given to a "*" handler while the block runs, once the sentinel has reached it."""
    seen: list[ds.ServerEvent] = []
    got_sentinel = threading.Event()

    def record(event: ds.ServerEvent) -> None:
        if event.type == SENTINEL["type"]:
            got_sentinel.set()
        else:
            seen.append(event)

    handle = session.on("*", record)
    try:
        yield seen
        assert got_sentinel.wait(10), "the handler never got the sentinel"
    finally:
        handle.remove()


def pull_until_sentinel(session: ds.RealtimeSession) -> list[ds.ServerEvent]:
    """Events from the iterator up to the sentinel (not included)."""
    events = []
    for event in session.events(timeout=10):
        if event.type == SENTINEL["type"]:
            return events
        events.append(event)
    raise AssertionError("the session ended before the sentinel")


@pytest.fixture
def hostile() -> Iterator[tuple[ds.RealtimeSession, RawPeer]]:
    """A session for bad frames: each must leave it working."""
    peer = RawPeer()
    with raw_session(peer) as session:
        yield session, peer
        # Still alive and well after everything it was sent.
        assert not session.closed
        peer.send(text({"type": "response.text.delta", "delta": "still here"}))
        assert session.wait_for(ds.ResponseTextDelta, timeout=10).delta == "still here"


@pytest.mark.parametrize("payload", list(BAD_TEXT.values()), ids=list(BAD_TEXT))
def test_bad_text_frame_is_one_invalid_frame(
    hostile: tuple[ds.RealtimeSession, RawPeer], payload: bytes
) -> None:
    """A bad text frame is exactly one InvalidFrame, for the iterator and the handlers alike, and the session goes on."""
    session, peer = hostile
    with collecting(session) as handled:
        peer.send(frame(payload) + text(SENTINEL))
        pulled = pull_until_sentinel(session)
    assert [type(e) for e in pulled] == [ds.InvalidFrame]
    assert handled == pulled
    invalid = pulled[0]
    assert isinstance(invalid, ds.InvalidFrame)
    assert invalid.length >= len(payload) // 4  # characters, not bytes, for text
    assert len(invalid.text) <= 200
    assert len(repr(invalid)) < 1000


def test_binary_frame_is_one_invalid_frame(hostile: tuple[ds.RealtimeSession, RawPeer]) -> None:
    """A binary frame (the service sends none) is one InvalidFrame naming its length."""
    session, peer = hostile
    with collecting(session) as handled:
        peer.send(frame(b"\x00\x01\x02" * 1000, OP_BINARY) + text(SENTINEL))
        pulled = pull_until_sentinel(session)
    assert [type(e) for e in pulled] == [ds.InvalidFrame]
    assert handled == pulled
    assert pulled[0].length == 3000  # type: ignore[attr-defined]


def test_unknown_type_is_one_unknown_event(hostile: tuple[ds.RealtimeSession, RawPeer]) -> None:
    """A well-formed frame of a type nobody knows is one UnknownEvent carrying the frame."""
    session, peer = hostile
    with collecting(session) as handled:
        peer.send(text({"type": "x.brand_new", "n": 1}) + text(SENTINEL))
        pulled = pull_until_sentinel(session)
    assert [type(e) for e in pulled] == [ds.UnknownEvent]
    assert handled == pulled
    assert pulled[0].raw == {"type": "x.brand_new", "n": 1}


def test_very_large_valid_frame_is_delivered_whole(
    hostile: tuple[ds.RealtimeSession, RawPeer],
) -> None:
    """A valid 12 MiB event (under the 16 MiB default) arrives whole, with a short repr."""
    session, peer = hostile
    delta = "y" * (12 << 20)
    with collecting(session) as handled:
        peer.send(text({"type": "response.text.delta", "delta": delta}) + text(SENTINEL))
        pulled = pull_until_sentinel(session)
    assert [type(e) for e in pulled] == [ds.ResponseTextDelta]
    assert pulled[0].delta == delta  # type: ignore[attr-defined]
    assert handled == pulled
    assert len(repr(pulled[0])) < 1000


def test_close_frame_with_a_bad_reason_still_closes() -> None:
    """A close frame whose reason is not UTF-8 still ends the session with its code."""
    peer = RawPeer()
    with raw_session(peer) as session:
        peer.send(frame(struct.pack("!H", 1011) + b"\xff\xfe", OP_CLOSE))
        with pytest.raises(ds.TransportError) as info:
            session.recv(timeout=10)
        assert info.value.code == 1011


def test_close_frame_of_one_byte_reports_no_status() -> None:
    """A close frame with a 1-byte payload (no room for a code) ends as 1005."""
    peer = RawPeer()
    with raw_session(peer) as session:
        peer.send(frame(b"\x03", OP_CLOSE))
        with pytest.raises(ds.TransportError) as info:
            session.recv(timeout=10)
        assert info.value.code == 1005


def test_normal_close_after_bad_frames_ends_cleanly() -> None:
    """Bad frames do not taint the end: a 1000 close after them ends iteration cleanly."""
    peer = RawPeer()
    with raw_session(peer) as session:
        peer.send(frame(b"{bad") + frame(b"\x00", OP_BINARY) + close_frame(1000, "bye"))
        events = list(session.events(timeout=10))
        assert [type(e) for e in events] == [ds.InvalidFrame, ds.InvalidFrame]
        assert session.close_code == 1000


# Properties: arbitrary values through a real socket ---------------------------------

EXAMPLES = int(os.environ.get("DASHSCOPE_SYNC_HYPOTHESIS_EXAMPLES", "60"))

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    [
        "delta", "response", "session", "error", "item", "response_id", "item_id", "output_index",
        "content_index", "transcript", "text", "audio_start_ms", "audio_end_ms", "usage", "output",
        "status", "id", "code", "message", "event_id", "arguments", "call_id", "name", "part",
    ]
)  # fmt: skip
event_like = st.builds(
    lambda wire_type, fields: {**fields, "type": wire_type},
    st.sampled_from(sorted(ds.EVENT_TYPES)),
    st.dictionaries(_field_names | st.text(max_size=6), json_values, max_size=6),
)

_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _one_event_each(session: ds.RealtimeSession, peer: RawPeer, wire: bytes) -> ds.ServerEvent:
    with collecting(session) as handled:
        peer.send(wire + text(SENTINEL))
        pulled = pull_until_sentinel(session)
    assert len(pulled) == 1, pulled
    assert handled == pulled
    repr(pulled[0])  # a repr never raises
    return pulled[0]


def test_arbitrary_json_values_are_one_event_each() -> None:
    """Any JSON value, including event-shaped objects with fields of any type, is exactly one event and never ends the session."""
    peer = RawPeer()
    with raw_session(peer) as session:

        @_settings
        @given(value=json_values | event_like)
        def check(value: object) -> None:
            event = _one_event_each(session, peer, frame(json.dumps(value).encode()))
            if not (isinstance(value, dict) and isinstance(value.get("type"), str)):
                assert isinstance(event, ds.InvalidFrame)
            elif value["type"] not in ds.EVENT_TYPES:
                assert isinstance(event, ds.UnknownEvent)
            else:
                assert event.type in (value["type"], "invalid_frame")

        check()
        assert not session.closed
    report("hypothesis: JSON values", examples=EXAMPLES)


def test_arbitrary_bytes_are_one_event_each() -> None:
    """Any bytes, as a text or a binary frame, are exactly one event and never end the session."""
    peer = RawPeer()
    with raw_session(peer) as session:

        @_settings
        @given(data=st.binary(max_size=300), binary=st.booleans())
        def check(data: bytes, binary: bool) -> None:
            event = _one_event_each(session, peer, frame(data, OP_BINARY if binary else 1))
            if binary:
                assert isinstance(event, ds.InvalidFrame)

        check()
        assert not session.closed


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "16M"])
def test_max_message_size_is_validated(bad: object) -> None:
    """max_message_size is a positive whole number of bytes or None; anything else is a ConfigError."""
    with pytest.raises(ds.ConfigError, match="max_message_size"):
        ds.RealtimeConfig(max_message_size=bad)  # type: ignore[arg-type]


def test_max_message_size_default_and_none() -> None:
    """The default is 16 MiB, and None (no limit) is accepted."""
    assert ds.RealtimeConfig().max_message_size == 16 * 1024 * 1024
    assert ds.RealtimeConfig(max_message_size=None).max_message_size is None


# Hostile refusals --------------------------------------------------------------------

DEEP_BODY = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_handshake_refusal_is_an_api_error() -> None:
    """A refused upgrade whose JSON body is nested 100 000 deep is an AuthenticationError, not a RecursionError."""
    listener = socket.create_server(("127.0.0.1", 0))

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(DEEP_BODY)).encode() + b"\r\n\r\n" + DEEP_BODY
            )

    thread = threading.Thread(target=refuse)
    thread.start()
    try:
        client = ds.Client("k", base_url=f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        with pytest.raises(ds.AuthenticationError) as info:
            client.realtime.connect(model="m", timeout=10)
        assert info.value.http_status == 401
    finally:
        thread.join(10)
        listener.close()


def test_deeply_nested_http_refusal_is_an_api_error() -> None:
    """A token call refused with a JSON body nested 100 000 deep is an AuthenticationError, not a RecursionError."""
    with LocalRealtimeServer() as server:
        server.reject_next_http(403, DEEP_BODY, content_type="application/json")
        client = ds.Client(server.api_key, http_base_url=server.http_base_url)
        with pytest.raises(ds.AuthenticationError) as info:
            client.tokens.create()
        assert info.value.http_status == 403


def test_endless_http_reply_is_capped() -> None:
    """A token endpoint streaming an endless body is refused past 1 MiB, not read into memory."""
    listener = socket.create_server(("127.0.0.1", 0))

    def stream() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{")
            with contextlib.suppress(OSError):
                for _ in range(10_000):  # 640 MB if nobody stopped reading
                    conn.sendall(b" " * 65536)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        client = ds.Client("k", http_base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(ds.APIError, match="longer than 1048576 bytes"):
            client.tokens.create(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        thread.join(20)
        listener.close()
