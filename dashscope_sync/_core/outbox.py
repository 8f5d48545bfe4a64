"""Shared mode: what a reactor's thread sends for one connection, without waiting.

A `Reactor`'s thread reads every session's socket, so it must never wait on
one: not for room on a socket whose peer stopped reading, nor for a send
lock a user's send holds. What a connection sends on that thread (the state
machine's decisions: a cancel asked for before its response started, or of
an answer silenced under server VAD; the item delete and re-create of
``interrupt(truncate=True)``; pongs and keepalive pings) is posted to its
`Outbox` instead, and written:

- at once, as far as the socket takes it (one non-blocking write);
- the rest when the reactor's selector reports room: the connection is
  watched for ``EVENT_WRITE`` only while bytes wait (a socket with room is
  ready at every select), the event-loop way;
- by a user's send, before its own frame (it may wait, bounded by
  ``send_timeout`` as any send): so frames keep the order they were decided
  in relative to the user's sends, as the thread reader's sends under the
  send lock do. A user's send that held the lock while a frame was posted
  has the reactor write it as it ends.

An outbox that does not move for ``send_timeout`` fails its connection
alone, with the reason thread mode gives for the same stuck send (the
connection's tick checks it).

Why not hand these sends to a task on the handler pool instead: a pool
thread would wait on the peer, so a few stuck peers would hold the whole
pool and every session's handlers behind them; a cancel would queue behind
the session's own slow handlers; and keeping its order against the user's
sends would need a lock handed between threads. The outbox costs no thread
and no wake-up when the socket has room (nearly always: the frame goes out
within the reactor's own turn).

Pure bookkeeping (no threads, locks or clocks of its own): the `Connection`
posts on the reactor's thread and calls `write` under its send lock.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .framing import OP_CLOSE, OP_PONG, OP_TEXT

if TYPE_CHECKING:
    from .transport import WebSocketTransport

__all__ = ["Outbox"]


class Outbox:
    """One connection's frames posted by the reactor's thread; see the module docstring.

    Thread safety: `post` and `post_pong` on the reactor's thread only (deque
    appends, replacing the last item and pops are atomic); `write` and
    `clear` by whoever holds the connection's send lock; the rest are
    unlocked reads for hints and the bound.
    """

    __slots__ = ("_close", "_frames", "_unsent", "closed", "since")

    def __init__(self) -> None:
        # (opcode, payload) in the order posted, not yet started on the wire.
        self._frames: collections.deque[tuple[int, bytes | str]] = collections.deque()
        # The rest of a frame written in part: before any other byte.
        self._unsent: memoryview | None = None
        # A close frame's payload to write after every frame posted (`post_close`).
        self._close: bytes | None = None
        #: Whether that close frame has started on the wire (set under the
        #: send lock by `write`): nothing but its rest may follow.
        self.closed = False
        #: When it last moved, or was posted to while empty (monotonic
        #: seconds); None while empty. For the connection's send_timeout.
        self.since: float | None = None

    def __bool__(self) -> bool:
        """Whether bytes wait (a frame posted, or the rest of one begun)."""
        return self._unsent is not None or bool(self._frames) or self._close is not None

    def post(self, opcode: int, payload: bytes | str, now: float) -> None:
        """Queue a frame (text payloads as str) behind those posted before it; none
        once a close frame was posted (nothing is sent after it)."""
        if self._close is not None or self.closed:
            return
        self._frames.append((opcode, payload))
        # After the append: a writer emptying it meanwhile either sees the
        # frame (and keeps the clock) or has cleared ``since`` before this.
        if self.since is None:
            self.since = now

    def post_pong(self, payload: bytes, now: float) -> None:
        """Queue a pong, or make one still waiting at the end answer this ping
        instead: one pong answers the latest ping, and a peer that pings while
        it reads nothing must not grow the outbox."""
        frames = self._frames
        try:
            if frames[-1][0] == OP_PONG:
                frames[-1] = (OP_PONG, payload)
                return
        except IndexError:  # empty, or a user's send took the last frame meanwhile
            pass
        self.post(OP_PONG, payload, now)

    def post_close(self, payload: bytes, now: float) -> None:
        """Queue a close frame, written after the frames posted before it (a
        close started on the reactor's thread, which cannot wait for the send lock
        or for room); idempotent."""
        if self._close is None and not self.closed:
            self._close = payload
            if self.since is None:
                self.since = now

    @property
    def head_is_control(self) -> bool:
        """Whether the next frame to start is a control frame (for error messages)."""
        frames = self._frames
        return frames[0][0] != OP_TEXT if frames else self._close is not None

    def clear(self) -> None:
        """Drop the frames not yet started, the close frame too (nothing more may be sent)."""
        self._frames.clear()
        self._close = None

    def write(
        self,
        transport: WebSocketTransport,
        tap: Callable[[str], None] | None,
        *,
        wait: bool,
        more: bool = True,
    ) -> bool:
        """Write in order, under the send lock: all of it (``wait``: each wait for
        room bounded by the send timeout, as any send, raising as it does), or what
        the socket takes now. True once empty. ``more``: False when only the rest
        of a frame already begun may go (a close frame follows), the others being
        dropped. ``tap`` sees each text frame's text as it starts on the wire.

        Raises:
            DashScopeTimeout: With ``wait``, no room came within the send timeout.
            TransportError: The connection failed.
        """
        frames = self._frames
        unsent, self._unsent = self._unsent, None
        try:
            while True:
                if unsent is None:
                    if not more:
                        self.clear()
                        break
                    try:
                        opcode, payload = frames.popleft()
                    except IndexError:
                        close = self._close
                        if close is None:
                            break
                        # Last: once it starts, nothing else may be written.
                        opcode, payload, self._close, self.closed = OP_CLOSE, close, None, True
                    if tap is not None and isinstance(payload, str):
                        tap(payload)
                    unsent = memoryview(transport.frame(opcode, payload))
                if wait:
                    transport.write(unsent)
                    unsent = None
                    continue
                sent = transport.write_some(unsent)
                if sent:
                    self.since = time.monotonic()
                if sent < len(unsent):
                    unsent = unsent[sent:]
                    return False
                unsent = None
        finally:
            self._unsent = unsent
        self.since = None
        if frames or self._close is not None:
            # Posted by the reactor's thread after the last pop, while ``since``
            # was still set: the send_timeout bound must count for it too.
            self.since = time.monotonic()
            return False
        return True
