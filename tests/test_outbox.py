"""The outbox's bookkeeping, pure: order, frames written in part, pongs, the close.

No sockets or threads: the writing side is a byte buffer with a room limit
standing in for the transport's ``frame``/``write``/``write_some`` (frames are
built by the real encoder and read back with the test peer's parser).
"""

from __future__ import annotations

import linecache
import sys
import types
from typing import cast

import pytest

from dashscope_sync._core.outbox import Outbox
from dashscope_sync._core.transport import WebSocketTransport

from ._net import OP_PING, OP_PONG, OP_TEXT, parse_client_frames, split_frames


class Wire:
    """What the outbox writes to: takes at most ``room`` more bytes from `write_some`;
    `write` (the waiting write) takes everything."""

    frame = staticmethod(WebSocketTransport.frame)

    def __init__(self, room: int = 1 << 20) -> None:
        self.room = room
        self.data = bytearray()

    def write_some(self, data: memoryview) -> int:
        taken = min(self.room, len(data))
        self.data += data[:taken]
        self.room -= taken
        return taken

    def write(self, data: memoryview) -> None:
        self.data += data

    def frames(self) -> list[tuple[int, bytes]]:
        return parse_client_frames(bytes(self.data))


def write(outbox: Outbox, wire: Wire, *, wait: bool = False, more: bool = True) -> bool:
    return outbox.write(cast(WebSocketTransport, wire), None, wait=wait, more=more)


def test_frames_go_in_the_order_posted_and_text_is_tapped_as_it_starts() -> None:
    """Text and control frames leave in the order posted; the tap sees each text once."""
    outbox, wire = Outbox(), Wire()
    tapped: list[str] = []
    outbox.post(OP_TEXT, '{"type":"response.cancel"}', 1.0)
    outbox.post(OP_PING, b"keepalive", 1.0)
    outbox.post(OP_TEXT, '{"type":"conversation.item.delete"}', 1.0)
    assert outbox and outbox.since == 1.0
    assert outbox.write(cast(WebSocketTransport, wire), tapped.append, wait=False)
    assert wire.frames() == [
        (OP_TEXT, b'{"type":"response.cancel"}'),
        (OP_PING, b"keepalive"),
        (OP_TEXT, b'{"type":"conversation.item.delete"}'),
    ]
    assert tapped == ['{"type":"response.cancel"}', '{"type":"conversation.item.delete"}']
    assert not outbox and outbox.since is None


@pytest.mark.parametrize("room", [0, 1, 7, 40])
def test_a_frame_written_in_part_resumes_with_its_own_bytes(room: int) -> None:
    """A frame the socket took in part is finished first, byte for byte, by the next
    write (waiting or not), before any frame posted later."""
    outbox, wire = Outbox(), Wire(room)
    outbox.post(OP_TEXT, "x" * 100, 1.0)
    assert not write(outbox, wire)
    outbox.post(OP_TEXT, "after", 2.0)
    started = bytes(wire.data)
    wire.room = 1 << 20
    assert write(outbox, wire, wait=room % 2 == 1)
    frames, used = split_frames(bytes(wire.data))
    assert frames == [(OP_TEXT, b"x" * 100), (OP_TEXT, b"after")] and used == len(wire.data)
    assert bytes(wire.data).startswith(started)


def test_pongs_waiting_answer_the_latest_ping_only() -> None:
    """Pongs posted while none could leave collapse into one answering the latest ping;
    one already begun is finished as it was, and a frame between them keeps both."""
    outbox, wire = Outbox(), Wire(room=3)
    outbox.post_pong(b"1", 1.0)
    assert not write(outbox, wire)  # the first pong is begun
    outbox.post_pong(b"2", 1.0)
    outbox.post_pong(b"3", 1.0)
    outbox.post(OP_TEXT, "between", 1.0)
    outbox.post_pong(b"4", 1.0)
    outbox.post_pong(b"5", 1.0)
    wire.room = 1 << 20
    assert write(outbox, wire)
    assert wire.frames() == [
        (OP_PONG, b"1"),
        (OP_PONG, b"3"),
        (OP_TEXT, b"between"),
        (OP_PONG, b"5"),
    ]


def test_before_a_close_only_the_begun_frame_is_finished() -> None:
    """With no more frames allowed (a close frame follows), the frame begun is finished
    and the ones not begun are dropped."""
    outbox, wire = Outbox(), Wire(room=2)
    outbox.post(OP_TEXT, "begun", 1.0)
    outbox.post(OP_TEXT, "never", 1.0)
    assert not write(outbox, wire)
    wire.room = 1 << 20
    assert write(outbox, wire, more=False)
    assert wire.frames() == [(OP_TEXT, b"begun")]
    assert not outbox


def test_since_tracks_when_it_last_moved() -> None:
    """``since`` is when the outbox was first posted to while empty, moves with each
    byte written, and is None once empty (the send_timeout bound counts from it)."""
    outbox, wire = Outbox(), Wire(room=0)
    outbox.post(OP_TEXT, "a", 5.0)
    outbox.post(OP_TEXT, "b", 6.0)
    assert outbox.since == 5.0
    assert not write(outbox, wire)  # nothing taken: it did not move
    assert outbox.since == 5.0
    wire.room = 4
    assert not write(outbox, wire)
    assert outbox.since is not None and outbox.since > 5.0
    assert outbox.head_is_control is False
    wire.room = 1 << 20
    assert write(outbox, wire)
    assert outbox.since is None


def test_a_pong_posted_as_a_write_empties_it_keeps_the_send_timeout_clock() -> None:
    """A pong the reactor posts just as a user's send finishes writing the outbox is
    reported as waiting, with ``since`` set (else the send_timeout bound never counts)."""
    outbox, wire = Outbox(), Wire()
    outbox.post(OP_TEXT, "cancel", 1.0)

    def post_mid_write(frame: types.FrameType, event: str, _arg: object) -> object:
        # On write()'s line that clears the clock (the deque was found empty):
        # the reactor's thread answers a ping now.
        if (
            event == "line"
            and not outbox
            and "self.since = None" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        ):
            outbox.post_pong(b"ping", 2.0)
        return post_mid_write

    previous = sys.gettrace()  # a coverage tool's, if any
    sys.settrace(
        lambda frame, event, arg: post_mid_write if frame.f_code.co_name == "write" else None
    )
    try:
        emptied = write(outbox, wire, wait=True)
    finally:
        sys.settrace(previous)
    assert outbox  # the pong waits
    assert not emptied
    assert outbox.since is not None
    assert write(outbox, wire) and outbox.since is None
    assert [op for op, _ in wire.frames()] == [OP_TEXT, OP_PONG]


def test_a_close_frame_goes_last_and_nothing_after_it() -> None:
    """A close posted while frames wait goes after them, once, and frames posted after it
    are never written; until it starts, a user's close may drop it (``more=False``)."""
    outbox, wire = Outbox(), Wire(room=0)
    outbox.post(OP_TEXT, "cancel", 1.0)
    outbox.post_close(b"\x03\xe8", 2.0)
    outbox.post_close(b"\x03\xe9", 3.0)  # idempotent
    outbox.post(OP_PING, b"late", 4.0)
    assert outbox and outbox.since == 1.0 and not outbox.closed
    assert not write(outbox, wire)  # no room: nothing started
    wire.room = 1 << 20
    assert write(outbox, wire) and outbox.closed and not outbox
    assert wire.frames() == [(OP_TEXT, b"cancel"), (0x8, b"\x03\xe8")]
    dropped = Outbox()
    dropped.post_close(b"\x03\xe8", 1.0)
    assert write(dropped, Wire(), more=False) and not dropped and not dropped.closed
