"""WebSocket framing without I/O (RFC 6455, section 5): bytes in, frames out.

`FrameParser` is the client's incremental parser: `feed` it whatever a read
returned, however it splits frames, and `next_frame` hands out whole
messages (fragments reassembled) and control frames (which may arrive
between fragments) as ``(opcode, payload)``. `encode_frame` builds the
client's (masked) frames. Neither touches a socket, a lock or a clock, so
the thread-per-session transport and a reactor reading many sockets on one
thread share the one implementation.

The parser is strict where RFC 6455 says the client MUST fail the
connection: reserved bits or opcodes, masked server frames, fragmented or
oversized control frames and continuation frames out of place are protocol
errors (close code 1002); a message longer than ``max_message_size``,
counted across its fragments, is refused from its frame header, before it
is buffered (1009). Two further checks are optional, because the session's
promises rely on the lenient behaviour: ``validate_utf8`` (the codec decodes
the text, and reports bad text as one invalid event instead of ending the
session) and ``strict_close`` (a close frame of one byte, a bad code or a
reason that is not UTF-8 still closes, reported as it came).

Errors are `TransportError` with ``code`` (the close code to fail the
connection with) and ``reason``; the parser is unusable after one.
"""

from __future__ import annotations

import os
from typing import Final

from .._errors import TransportError

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_PROTOCOL_ERROR",
    "MAX_CONTROL_PAYLOAD",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameParser",
    "check_close",
    "encode_frame",
    "protocol_error",
]

# Opcodes (RFC 6455, section 5.2).
OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
#: The largest payload of a control frame (RFC 6455, section 5.5).
MAX_CONTROL_PAYLOAD: Final = 125
#: The close code for a broken protocol (RFC 6455).
CLOSE_PROTOCOL_ERROR: Final = 1002
#: The close code for a message too big to process (RFC 6455).
CLOSE_MESSAGE_TOO_BIG: Final = 1009
# What each of the 16 opcodes is: 1 a data frame (continuation, text,
# binary), 2 a control frame (close, ping, pong), 0 reserved (RFC 6455, 5.2).
_OPCODE_KIND: Final = (1, 1, 1, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0)
# Close codes a peer may send (RFC 6455, 7.4): 1000-1003, 1007-1014 (the
# registered ones), and 3000-4999 (libraries, applications).
_SENDABLE_CLOSE: Final = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))


def protocol_error(message: str, *, code: int = CLOSE_PROTOCOL_ERROR) -> TransportError:
    """The error that fails the connection with ``code`` because of ``message``."""
    return TransportError(f"protocol error: {message}", code=code, reason=message)


def check_close(payload: bytes) -> None:
    """Raise the protocol error RFC 6455 (5.5.1, 7.4) makes of a malformed close payload."""
    if not payload:
        return
    if len(payload) == 1:
        raise protocol_error("close frame of one byte (a status code takes two)")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CLOSE and not 3000 <= code < 5000:
        raise protocol_error(f"close code {code} may not be sent")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise protocol_error("close reason is not UTF-8") from None


class FrameParser:
    """The incremental frame parser; see the module docstring.

    Thread safety: none; one thread feeds and reads it (a session's reader,
    or the reactor's).
    """

    __slots__ = (
        "_buf",
        "_fragment_opcode",
        "_fragments",
        "_max_message",
        "_pos",
        "_strict_close",
        "_validate_utf8",
    )

    def __init__(
        self,
        max_message_size: int | None,
        *,
        validate_utf8: bool = False,
        strict_close: bool = False,
    ) -> None:
        # The longest message accepted, counted across fragments (None: no limit).
        self._max_message = max_message_size
        self._validate_utf8 = validate_utf8
        self._strict_close = strict_close
        # Bytes fed but not yet parsed start at _pos.
        self._buf = bytearray()
        self._pos = 0
        # The fragmented message received so far, and its opcode. One
        # bytearray, not a list of parts: a hostile server sending millions
        # of tiny (or empty) fragments must cost their bytes, not an object
        # and a list slot each.
        self._fragments: bytearray | None = None
        self._fragment_opcode = OP_TEXT

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet handed out as frames (a partial frame, fragments)."""
        fragments = self._fragments
        return len(self._buf) - self._pos + (0 if fragments is None else len(fragments))

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the socket (any amount, split anywhere)."""
        pos = self._pos
        if pos:
            if pos == len(self._buf):
                # All parsed: start afresh, so a burst's capacity is released.
                self._buf = bytearray(data)
                self._pos = 0
                return
            # Deleting from the front of a bytearray is O(1) in CPython.
            del self._buf[:pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next whole message or control frame as ``(opcode, payload)``, or None
        until more bytes are fed.

        Raises:
            TransportError: The peer broke the protocol (``code`` 1002) or sent a
                message over ``max_message_size`` (1009).
        """
        while True:
            frame = self._parse_one()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode >= OP_CLOSE:  # control frames: _parse_one checked them
                if opcode == OP_CLOSE and self._strict_close:
                    check_close(payload)
                return opcode, payload
            if opcode == OP_CONT:
                fragments = self._fragments
                if fragments is None:
                    raise protocol_error("continuation frame without a message")
                fragments += payload
                if not fin:
                    continue
                opcode = self._fragment_opcode
                self._fragments = None
                return self._message(opcode, bytes(fragments))
            if self._fragments is not None:
                raise protocol_error("new message inside a fragmented one")
            if fin:
                return self._message(opcode, payload)
            self._fragment_opcode, self._fragments = opcode, bytearray(payload)

    def _message(self, opcode: int, payload: bytes) -> tuple[int, bytes]:
        if opcode == OP_TEXT and self._validate_utf8:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                raise protocol_error("text message is not UTF-8", code=1007) from None
        return opcode, payload

    def _parse_one(self) -> tuple[bool, int, bytes] | None:
        """Parse one frame out of the buffer, or None if it is not all there yet."""
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        first, second = buf[pos], buf[pos + 1]
        if first & 0x70:
            raise protocol_error("reserved bits set (no extension was negotiated)")
        if second & 0x80:
            raise protocol_error("masked frame from the server")
        opcode = first & 0x0F
        kind = _OPCODE_KIND[opcode]
        if not kind:
            raise protocol_error(f"reserved opcode 0x{opcode:X}")
        length = second & 0x7F
        header = 2
        if length == 126:
            if available < 4:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            header = 4
        elif length == 127:
            if available < 10:
                return None
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            header = 10
            if length >> 63:
                raise protocol_error("frame length with the most significant bit set")
        if kind == 2:
            if not first & 0x80:
                raise protocol_error(f"fragmented control frame (opcode 0x{opcode:X})")
            if length > MAX_CONTROL_PAYLOAD:
                raise protocol_error(
                    f"control frame of {length} bytes (at most {MAX_CONTROL_PAYLOAD})"
                )
        elif self._max_message is not None:
            # Refused from the header, before a byte of it is buffered; a
            # continuation counts with the fragments before it.
            fragments = self._fragments
            size = length + len(fragments) if opcode == OP_CONT and fragments else length
            if size > self._max_message:
                raise protocol_error(
                    f"message of at least {size} bytes is larger than "
                    f"max_message_size ({self._max_message})",
                    code=CLOSE_MESSAGE_TOO_BIG,
                )
        end = pos + header + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + header : end])
        self._pos = end
        return bool(first & 0x80), opcode, payload


def encode_frame(
    opcode: int, payload: bytes, *, mask_key: bytes | None = None, fin: bool = True
) -> bytes:
    """One client frame: header, mask key and masked payload (RFC 6455, 5.2, 5.3).

    ``mask_key`` (4 bytes) is drawn from `os.urandom` when not given; a
    given one is for tests.
    """
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 0x10000:
        head = bytes((first, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0xFF)) + n.to_bytes(8, "big")
    key = os.urandom(4) if mask_key is None else mask_key
    if not n:
        return head + key
    # XOR as one big integer: a few C loops over the bytes, no Python loop.
    repeated = key * (n // 4 + 1)
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated[:n], "little")
    return head + key + masked.to_bytes(n, "little")
