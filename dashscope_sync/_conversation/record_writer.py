"""What `Recorder` writes, on its own thread: `RecordWriter`.

The I/O shell hands each frame that crosses the socket to `RecordWriter.put`
(``Connection.tap``, set by `SessionCore.record_frames`): a ``deque``
append of references, so the reader thread does no file I/O, JSON or
base64 work. The ``dashscope_sync-recorder`` thread drains the deque in
batches (every `FLUSH_INTERVAL`, or once 64 frames wait) and writes:

- ``frames.jsonl``: a header line ``{"recording": 1, "model", "family",
  "session_id", "started"}``, then one line per frame, in the order they
  crossed the socket: ``{"t": seconds since the recording started
  (monotonic), "dir": "in" | "out", "frame": {...}}``; first the frames of
  the session's opening (``opening``: kept by the core until ``connect``
  returned), at ``t`` 0, then those from the recording's start on. With ``audio=False``
  each media field (`PAYLOAD_FIELDS`) holds ``""`` and the line gets
  ``"omitted": {field: decoded bytes}``. A frame that is not a JSON object
  (a binary frame, broken text) gets a line ``{"t", "dir", "invalid":
  {"length", "error"}}`` instead. The frames are the server's and the
  library's own; the URL, the API key and the headers are never written.
- ``conversation.wav`` (``audio=True``): stereo PCM16, the user's appended
  audio on the left, the assistant's on the right (with a speaker attached,
  what it played), on the recording's clock (see `_audio/mixdown.py`).
- ``transcript.json``, at close, when a transcript provider was given.
"""

from __future__ import annotations

import binascii
import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from itertools import accumulate, compress, islice, repeat
from operator import is_not, le, sub
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from .._audio.mixdown import Channel, write_buffers, write_stereo_wav
from .._core.connection import FRAME_IN, FRAME_OUT
from .._deadline import check_timeout
from .._errors import ConfigError, DashScopeError, DashScopeTimeout
from .._fmt import seconds
from .._wire.payloads import (
    USER_AUDIO_FIELD,
    USER_AUDIO_TYPE,
    blank_payloads,
    client_frame_type,
    parse_object,
    payload_text,
)
from .record_lines import dumps, frame_line, in_lines, parsed_line

if TYPE_CHECKING:
    from .._wire.events import ResponseAudioDelta, ServerEvent

__all__ = ["FLUSH_INTERVAL", "RecordWriter"]

logger = logging.getLogger("dashscope_sync")

#: How often (seconds) the recorder thread writes what came since.
FLUSH_INTERVAL: Final = 0.1
#: Frames waiting that wake the recorder thread before its next round.
_WAKE_ITEMS: Final = 64
#: The version of the ``frames.jsonl`` format (the header's ``recording``).
FORMAT_VERSION: Final = 1
#: Interrupted responses remembered, so their late audio stays off the recording.
_CUT_KEEP: Final = 8

# The kinds of what the deque carries besides frames ("in", "out").
_FLUSH: Final = "flush"  # (t, _FLUSH, an Event to set once written, None)
_PLAYED: Final = "played"  # (t, _PLAYED, a block the speaker played, its rate)
_CUT: Final = "cut"  # (t, _CUT, the interrupted response's id or None, None)
_SPEAKER: Final = "speaker"  # (t, _SPEAKER, the speaker's rate or None: detached, None)
_MUTED: Final = "muted"  # (t, _MUTED, the id of a response nobody hears, None)

#: Takes the oldest item of a deque: mapped over a round, the pops run in C.
_popleft: Final = collections.deque.popleft


def _open_files(
    path: Path, header: Mapping[str, object], audio: bool, wav_rate: int
) -> tuple[BinaryIO, Channel | None, Channel | None]:
    """``frames.jsonl`` with its header written, and the WAV's two channels (``audio``).

    The one boundary where the folder's files are opened: an `OSError` (a
    folder where the file goes, a read-only folder, a full disk) closes what
    was opened and becomes a `ConfigError`, the folder being unusable.
    """
    opened: list[BinaryIO | Channel] = []
    try:
        # Unbuffered: each round's lines go out in one write.
        frames = open(path / "frames.jsonl", "wb", buffering=0)  # noqa: SIM115
        opened.append(frames)
        write_buffers(frames.fileno(), [dumps(header).encode(), b"\n"])
        if not audio:
            return frames, None, None
        left = Channel(wav_rate, path)
        opened.append(left)
        right = Channel(wav_rate, path)
    except OSError as exc:
        for done in reversed(opened):
            done.close()
        raise ConfigError(f"cannot record into the folder {str(path)!r}: {exc}") from exc
    return frames, left, right


class RecordWriter:
    """Writes one recording on its own thread; see the module docstring.

    `start` opens the folder's files and starts the thread (the constructor
    does no I/O). The session then feeds it (`put` through the connection's tap, `interrupted`
    through the core, `played` and `speaker` through an attachment); the
    public `Recorder` flushes and closes it.

    Thread safety: every method may be called from any thread; the feeding
    ones never block. `close` is idempotent and waits for the files.

    Attributes:
        path: The folder written to.
        audio: Whether audio (and image) payloads are kept, and the WAV written.
        error: Why writing failed (also raised by `close`), or None.
    """

    def __init__(
        self,
        path: Path,
        *,
        audio: bool,
        header: Mapping[str, object],
        input_rate: Callable[[], int | None],
        output_rate: Callable[[], int | None],
        wav_rate: int,
        transcript: Callable[[], str] | None = None,
        opening: Iterable[tuple[float, str, bytes | str, ServerEvent | None]] = (),
    ) -> None:
        self.path = path
        self.audio = audio
        self.error: BaseException | None = None
        self._input_rate = input_rate
        self._output_rate = output_rate
        self._transcript = transcript
        self._header = header
        self._wav_rate = wav_rate
        # Set by start(), which does the folder's I/O and starts the thread: no
        # I/O and no thread in a constructor.
        self._started: float
        self._frames: BinaryIO
        self._left: Channel | None
        self._right: Channel | None
        self._thread: threading.Thread
        # Frames and audio for the recorder thread, appended by the reader, the
        # senders, the speaker's player and interrupts: a deque's append and
        # popleft are atomic, so no lock; the thread drains it in batches. The
        # session's opening goes first: its offsets, before the start, become 0.
        self._items: collections.deque[tuple[float, str, Any, Any]] = collections.deque(opening)
        # Set by close(): flush() refuses, as nothing more comes.
        self._closed = False
        # The stop flag: set by close() (or the session's end); the thread
        # drains what is left, finishes the files and ends.
        self._stop = threading.Event()
        # Wakes the thread before its next round: a flush() or close() waits on it.
        self._wake = threading.Event()
        # The recorder thread's own state, from here on.
        self._last_t = 0.0
        self._played_rate: int | None = None  # a speaker's rate: its blocks are the right channel
        self._cut: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._last_reply: str | None = None
        # An audio line's ``"omitted"`` text, by decoded size (most deltas share one).
        self._omitted_text: dict[int, bytes] = {}

    def start(self) -> None:
        """Open the folder's files (the header written) and start the recorder thread.

        Called once, before the writer is fed or closed.

        Raises:
            ConfigError: The folder's files cannot be written (see `_open_files`).
        """
        self._started = time.monotonic()
        header_line = {"recording": FORMAT_VERSION, **self._header}
        header_line["started"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self._frames, self._left, self._right = _open_files(
            self.path, header_line, self.audio, self._wav_rate
        )
        self._thread = threading.Thread(
            target=self._run,
            name="dashscope_sync-recorder",
            # Daemon: a recording never closed must not hang the interpreter's
            # exit; `Recorder`'s exit hook completes its files first.
            daemon=True,
        )
        self._thread.start()

    # Fed by the session's threads (never blocking) -------------------------------

    @property
    def put(self) -> Callable[[tuple[float, str, bytes | str, ServerEvent | None]], None]:
        """Takes a frame that crossed the socket (``Connection.tap``)."""
        items = self._items
        append, wake = items.append, self._wake.set

        def put(item: tuple[float, str, bytes | str, ServerEvent | None]) -> None:
            append(item)
            # Every WAKE_ITEMS frames, the thread is woken (Event.set: a lock held
            # for a moment), so a burst's frames are let go while still in warm
            # memory instead of piling up until the next round.
            if not len(items) % _WAKE_ITEMS:
                wake()

        return put

    def interrupted(self, at: float, response_id: str | None) -> None:
        """The reply was interrupted at ``at``: what it would play after that is not heard."""
        self._items.append((at, _CUT, response_id, None))

    def muted(self, response_id: str) -> None:
        """The reply started silenced (a tool answer nobody hears): none of its audio is heard."""
        self._items.append((time.monotonic(), _MUTED, response_id, None))

    def played(self, block: bytes, rate: int) -> None:
        """A block the speaker gave its device (the speaker's tap; its player thread)."""
        self._items.append((time.monotonic(), _PLAYED, block, rate))

    def speaker(self, rate: int | None) -> None:
        """A speaker was attached (its rate) or detached (None): the right channel's source."""
        self._items.append((time.monotonic(), _SPEAKER, rate, None))

    def finish(self) -> None:
        """Stop recording without waiting (the session ended unclosed); the thread ends itself."""
        self._stop.set()
        self._wake.set()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every frame that crossed the socket before this call is in
        ``frames.jsonl`` (written to the operating system, not fsynced).

        Args:
            timeout: The longest wait, in seconds; None waits as long as it takes.

        Raises:
            DashScopeTimeout: Not written within ``timeout``.
            DashScopeError: Writing the recording failed, or it is closed.
        """
        limit = check_timeout(timeout)
        if self._closed:
            raise DashScopeError(f"this recorder is closed ({str(self.path)!r})")
        written = threading.Event()
        self._items.append((time.monotonic(), _FLUSH, written, None))
        self._wake.set()
        if not self._thread.is_alive():
            written.set()  # it failed: nothing more will be written
        if not written.wait(limit):
            raise DashScopeTimeout(
                f"the recording was not written within {seconds(limit)}", timeout=limit
            )
        self._raise_error()

    def _raise_error(self) -> None:
        error = self.error
        if isinstance(error, DashScopeTimeout):
            raise error
        if error is not None:
            raise DashScopeError(f"recording to {str(self.path)!r} failed: {error}") from error

    # Closing ------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Write what is left, complete the files and end the thread; idempotent.

        Args:
            timeout: The longest wait for the files, in seconds; None waits
                as long as it takes. A thread still writing then (a stuck
                disk) is left to finish as a daemon, which cannot hold up the
                interpreter's exit: ``error`` becomes a `DashScopeTimeout`,
                as the files may stay incomplete.

        Raises:
            DashScopeTimeout: The files were not complete within ``timeout``.
            DashScopeError: Writing the recording failed (``error`` says why).
        """
        limit = check_timeout(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if threading.current_thread() is not thread:
            thread.join(limit)
            if thread.is_alive() and self.error is None:
                self.error = DashScopeTimeout(
                    f"the recording to {str(self.path)!r} was not complete within "
                    f"{seconds(limit)}: its files may stay incomplete",
                    timeout=limit,
                )
                logger.warning("%s", self.error)
        self._raise_error()

    # The recorder thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # Batches: a burst wakes this thread once per _WAKE_ITEMS frames.
                self._wake.wait(FLUSH_INTERVAL)
                self._wake.clear()
                self._drain()
            self._drain()
            self._finish()
        except BaseException as exc:
            logger.exception("recording to %r failed", str(self.path))
            self.error = exc
        finally:
            while self._items:  # popped, not iterated: the tap may still append
                _, kind, data, _ = self._items.popleft()
                if kind == _FLUSH:
                    data.set()  # a flush() waiting on a thread that failed
            self._frames.close()
            for channel in (self._left, self._right):
                if channel is not None:
                    channel.close()

    def _drain(self) -> None:
        """Write what came since the last round, in one write.

        The hot path of a burst: the round's items are taken and split with
        C-level passes (`record_lines` formats the received frames' lines the
        same way), so Python's work per frame is the least it can be.
        """
        items = self._items
        batch = list(map(_popleft, repeat(items, len(items))))
        out: list[bytes] = []  # frames.jsonl's new lines, written at once
        flushed: list[threading.Event] = []
        if batch:
            ts, kinds, datas, events = zip(*batch, strict=True)
            # Offsets never go back: frames in and out are handed on by two
            # threads (and the session's opening, older, comes at 0).
            started, last = self._started, self._last_t
            if ts[0] - started >= last and all(map(le, ts, islice(ts, 1, None))):
                ats = list(map(sub, ts, repeat(started)))  # in order, as nearly always
            else:
                ats = list(accumulate(map(sub, ts, repeat(started)), max, initial=last))
                del ats[0]
            self._last_t = ats[-1]
            start = 0
            for i in compress(range(len(batch)), map(is_not, kinds, repeat(FRAME_IN))):
                if start < i:
                    self._frames_in(ats[start:i], datas[start:i], events[start:i], out)
                self._other(ats[i], kinds[i], datas[i], events[i], out, flushed)
                start = i + 1
            if start < len(batch):
                self._frames_in(ats[start:], datas[start:], events[start:], out)
        if out:
            write_buffers(self._frames.fileno(), out)
        for channel in (self._left, self._right):
            if channel is not None:
                channel.write()
        for written in flushed:
            written.set()

    def _frames_in(
        self,
        ats: Sequence[float],
        datas: Sequence[bytes],
        events: Sequence[ServerEvent],
        out: list[bytes],
    ) -> None:
        """Received frames, one after another: their lines, and the reply audio in them."""
        lines, deltas = in_lines(ats, datas, events, audio=self.audio, omitted=self._omitted_text)
        out.append(lines)
        if deltas:
            self._last_reply = events[deltas[-1]].response_id  # type: ignore[attr-defined]
            if self._right is not None and self._played_rate is None:
                for i in deltas:
                    self._reply_audio(ats[i], events[i])  # type: ignore[arg-type]

    def _other(
        self,
        at: float,
        kind: str,
        data: Any,
        extra: Any,
        out: list[bytes],
        flushed: list[threading.Event],
    ) -> None:
        """One item that is not a received frame: a sent frame, played audio, an interrupt..."""
        if kind == FRAME_OUT:
            out.append(self._frame_out(at, data))
        elif kind == _PLAYED:
            if self._right is not None and self._played_rate is not None:
                self._right.add(at, data, extra)  # the block and its rate
        elif kind == _CUT:
            self._on_cut(at, data)
        elif kind == _SPEAKER:
            self._played_rate = data
        elif kind == _MUTED:
            self._keep_off(data)
        else:  # _FLUSH
            flushed.append(data)

    def _frame_out(self, at: float, text: str) -> bytes:
        data = text.encode()
        wire_type = client_frame_type(data)
        audio = self.audio
        if audio:
            if wire_type == USER_AUDIO_TYPE:
                where = payload_text(data, USER_AUDIO_FIELD)
                if where is not None:
                    self._user_audio(at, binascii.a2b_base64(data[where[0] : where[1]]))
                    return b'{"t":%.6f,"dir":"out","frame":%s}\n' % (at, data)
            elif wire_type is not None:
                return b'{"t":%.6f,"dir":"out","frame":%s}\n' % (at, data)
            obj = parse_object(data)
            if obj is None:  # pragma: no cover - the library sends JSON objects only
                return b""
            pcm = obj.get(USER_AUDIO_FIELD)
            if obj.get("type") == USER_AUDIO_TYPE and isinstance(pcm, str):
                self._user_audio(at, binascii.a2b_base64(pcm))
            return parsed_line(at, b"out", obj, audio=audio)
        blanked = None if wire_type is None else blank_payloads(data, wire_type)
        if blanked is None:
            obj = parse_object(data)
            if obj is None:  # pragma: no cover - the library sends JSON objects only
                return b""
            return parsed_line(at, b"out", obj, audio=audio)
        return frame_line(at, b"out", *blanked)

    # The audio ---------------------------------------------------------------------------

    def _user_audio(self, at: float, pcm: bytes) -> None:
        rate = self._input_rate()
        if self._left is not None and rate is not None:
            self._left.add(at, pcm, rate)

    def _reply_audio(self, at: float, event: ResponseAudioDelta) -> None:
        if self._right is None or event.response_id in self._cut:
            return
        rate = self._output_rate()
        if rate is not None:
            self._right.add(at, event.delta, rate)

    def _on_cut(self, at: float, response_id: str | None) -> None:
        if self._right is not None:
            self._right.cut(at)
        cut = response_id if response_id is not None else self._last_reply
        if cut is not None:
            self._keep_off(cut)

    def _keep_off(self, response_id: str) -> None:
        """None of that reply's audio from now on goes to the right channel."""
        self._cut[response_id] = None
        while len(self._cut) > _CUT_KEEP:
            self._cut.popitem(last=False)

    def _finish(self) -> None:
        """Mix the WAV and write the transcript (the recorder thread, at the end)."""
        left, right = self._left, self._right
        if left is not None and right is not None:
            left.finish()
            right.finish()
            write_stereo_wav(self.path / "conversation.wav", left, right)
        if self._transcript is not None:
            (self.path / "transcript.json").write_text(self._transcript(), encoding="utf-8")
