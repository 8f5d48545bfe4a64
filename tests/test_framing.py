"""The sans-I/O framing layer alone: bytes in, frames out, no sockets (pure layer).

The transport and the reactor both read through `FrameParser`; the socket
tests (test_transport, test_hostile_frames) check the same rules end to end.
"""

from __future__ import annotations

import struct

import pytest
import websocket
from hypothesis import given, settings
from hypothesis import strategies as st

from dashscope_sync import TransportError
from dashscope_sync._core.framing import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    check_close,
    encode_frame,
)

from ._net import frame, split_frames
from .test_hostile_frames import VIOLATIONS


def parse_all(
    data: bytes, *, max_size: int | None = 1 << 20, **options: bool
) -> list[tuple[int, bytes]]:
    """Feed ``data`` in one piece and collect every frame."""
    parser = FrameParser(max_size, **options)
    parser.feed(data)
    out = []
    while (got := parser.next_frame()) is not None:
        out.append(got)
    return out


def test_frames_of_every_length_class() -> None:
    """Payloads of 0, 125, 126, 65535, 65536 bytes use the 7-, 16- and 64-bit lengths and come out whole."""
    sizes = (0, 125, 126, 65535, 65536)
    data = b"".join(frame(bytes([n % 251]) * n, OP_BINARY) for n in sizes)
    assert parse_all(data) == [(OP_BINARY, bytes([n % 251]) * n) for n in sizes]


def test_split_at_every_byte() -> None:
    """A stream fed one byte at a time gives the same frames as fed whole, each as soon as its last byte is in."""
    data = frame(b'{"a":1}') + frame(b"x" * 300, OP_BINARY) + frame(b"p", OP_PING)
    parser = FrameParser(None)
    out = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        got = parser.next_frame()
        if got is not None:
            out.append((i, got))
    assert [f for _, f in out] == parse_all(data)
    ends = [len(frame(b'{"a":1}')) - 1, len(frame(b'{"a":1}') + frame(b"x" * 300, OP_BINARY)) - 1]
    assert [i for i, _ in out] == [*ends, len(data) - 1]
    assert parser.buffered == 0


def test_fragments_reassembled_with_control_frames_between() -> None:
    """A fragmented text message comes out whole, after the ping and pong sent between its fragments."""
    data = (
        frame(b'{"a"', fin=False)
        + frame(b"hi", OP_PING)
        + frame(b":", OP_CONT, fin=False)
        + frame(b"", OP_PONG)
        + frame(b"1}", OP_CONT)
    )
    assert parse_all(data) == [(OP_PING, b"hi"), (OP_PONG, b""), (OP_TEXT, b'{"a":1}')]


def test_empty_fragments_are_fine() -> None:
    """Empty first, middle and last fragments make an ordinary (here empty) binary message."""
    data = frame(b"", OP_BINARY, fin=False) + frame(b"", OP_CONT, fin=False) + frame(b"", OP_CONT)
    assert parse_all(data) == [(OP_BINARY, b"")]


@pytest.mark.parametrize(
    ("bad", "code", "words"),
    [pytest.param(bad, code, words, id=name) for name, bad, code, words in VIOLATIONS],
)
def test_protocol_violations(bad: bytes, code: int, words: str) -> None:
    """Each violation the socket tests send is refused by the parser with the same close code and words."""
    parser = FrameParser(16 << 20)
    parser.feed(frame(b"{}") + bad)
    assert parser.next_frame() == (OP_TEXT, b"{}")  # what came before is intact
    with pytest.raises(TransportError) as info:
        parser.next_frame()
    assert info.value.code == code
    assert words in str(info.value)


def test_oversized_message_is_refused_from_its_header() -> None:
    """A frame longer than max_message_size is refused from its header alone, before its payload arrives."""
    parser = FrameParser(1000)
    parser.feed(b"\x82\x7e" + struct.pack("!H", 1001))
    with pytest.raises(TransportError) as info:
        parser.next_frame()
    assert info.value.code == 1009


def test_size_limit_counts_across_fragments() -> None:
    """Fragments of 600 bytes each pass alone, but the second one takes the message over 1000 bytes."""
    parser = FrameParser(1000)
    parser.feed(frame(b"a" * 600, OP_BINARY, fin=False) + frame(b"a" * 600, OP_CONT))
    with pytest.raises(TransportError) as info:
        parser.next_frame()
    assert info.value.code == 1009
    assert "at least 1200 bytes" in str(info.value)


def test_message_at_the_limit_passes() -> None:
    """A message of exactly max_message_size bytes, in two fragments, is delivered."""
    data = frame(b"a" * 500, OP_BINARY, fin=False) + frame(b"a" * 500, OP_CONT)
    assert parse_all(data, max_size=1000) == [(OP_BINARY, b"a" * 1000)]


def test_utf8_validation_is_optional() -> None:
    """Bad UTF-8 text passes by default (the codec reports it) and fails with 1007 when asked."""
    bad = frame(b"\xff\xfe")
    assert parse_all(bad) == [(OP_TEXT, b"\xff\xfe")]
    with pytest.raises(TransportError) as info:
        parse_all(bad, validate_utf8=True)
    assert info.value.code == 1007


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\x03", "one byte"),
        (struct.pack("!H", 1005), "close code 1005"),
        (struct.pack("!H", 999), "close code 999"),
        (struct.pack("!H", 2000), "close code 2000"),
        (struct.pack("!H", 1000) + b"\xff", "not UTF-8"),
    ],
)
def test_strict_close_checks(payload: bytes, words: str) -> None:
    """With strict_close, malformed close payloads fail with 1002; by default they pass as they came."""
    assert parse_all(frame(payload, OP_CLOSE)) == [(OP_CLOSE, payload)]
    with pytest.raises(TransportError) as info:
        parse_all(frame(payload, OP_CLOSE), strict_close=True)
    assert info.value.code == 1002
    assert words in str(info.value)


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1014, 3000, 4999])
def test_valid_close_codes_pass(code: int) -> None:
    """Registered and private close codes, with a UTF-8 reason, pass the strict check."""
    check_close(struct.pack("!H", code) + "bye é".encode())
    check_close(b"")


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 100_001])
def test_encoder_matches_websocket_client(n: int) -> None:
    """With the same mask key, encode_frame writes byte for byte what websocket-client's ABNF writes."""
    payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    key = b"\x01\x80\xfe\x37"
    reference = websocket.ABNF.create_frame(payload, OP_BINARY)
    reference.get_mask_key = lambda _n: key
    assert encode_frame(OP_BINARY, payload, mask_key=key) == reference.format()


def test_encoder_masks_with_a_fresh_key() -> None:
    """Frames are masked (the mask bit set) with a new key each time, and unmask to the payload."""
    one, two = encode_frame(OP_TEXT, b"hello"), encode_frame(OP_TEXT, b"hello")
    assert one[1] & 0x80 and two[1] & 0x80
    assert split_frames(one + two)[0] == [(OP_TEXT, b"hello"), (OP_TEXT, b"hello")]
    keys = {encode_frame(OP_TEXT, b"hello")[2:6] for _ in range(8)}
    assert len(keys) > 1


def test_tiny_fragments_cost_their_bytes() -> None:
    """A hundred thousand empty fragments keep one growing buffer: what is buffered is what came."""
    parser = FrameParser(None)
    parser.feed(frame(b"x", OP_BINARY, fin=False) + frame(b"", OP_CONT, fin=False) * 100_000)
    assert parser.next_frame() is None
    assert parser.buffered == 1


_frames = st.lists(
    st.tuples(st.sampled_from([OP_TEXT, OP_BINARY, OP_PING]), st.binary(max_size=300)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(frames=_frames, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=20))
def test_any_split_gives_the_same_frames(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    """Any sequence of valid frames, cut into any pieces, parses to exactly those frames."""
    frames = [(op, p[:125] if op == OP_PING else p) for op, p in frames]
    data = b"".join(frame(p, op) for op, p in frames)
    parser = FrameParser(None)
    out = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        parser.feed(data[last:cut])
        last = cut
        while (got := parser.next_frame()) is not None:
            out.append(got)
    assert out == frames


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    """Arbitrary bytes give frames, wait for more, or raise TransportError with 1002/1009: nothing else."""
    parser = FrameParser(1000)
    parser.feed(data)
    try:
        while parser.next_frame() is not None:
            pass
    except TransportError as exc:
        assert exc.code in (1002, 1009)
