"""`session.record(path)`: every frame in and out, and the conversation's audio, to a folder.

The I/O shell hands each frame that crosses the socket to `Recorder.put`
(``Connection.tap``, set by `SessionCore.record_frames`): one ``deque``
append of references, so the reader thread does no file I/O, JSON or
base64 work. The ``dashscope_sync-recorder`` thread drains the deque in
batches (every `FLUSH_INTERVAL`, so a burst costs the reader no wake-ups)
and writes:

- ``frames.jsonl``: a header line ``{"recording": 1, "model", "family",
  "session_id", "started"}``, then one line per frame, in the order they
  crossed the socket: ``{"t": seconds since the recording started
  (monotonic), "dir": "in" | "out", "frame": {...}}``. With ``audio=False``
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
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from .._audio.mixdown import Channel, write_stereo_wav
from .._errors import DashScopeError
from .._wire.events import InvalidFrame, ResponseAudioDelta
from .._wire.payloads import (
    blank_payloads,
    blank_payloads_in,
    client_frame_type,
    parse_object,
    payload_text,
)

if TYPE_CHECKING:
    from .._wire.events import ServerEvent

__all__ = ["FLUSH_INTERVAL", "Recorder"]

logger = logging.getLogger("dashscope_sync")

#: How often (seconds) the recorder thread writes what came since.
FLUSH_INTERVAL: Final = 0.1
#: The version of the ``frames.jsonl`` format (the header's ``recording``).
FORMAT_VERSION: Final = 1
#: Interrupted responses remembered, so their late audio stays off the recording.
_CUT_KEEP: Final = 8

# The kinds of what the deque carries besides frames ("in", "out").
_PLAYED: Final = "played"  # (t, _PLAYED, a block the speaker played, its rate)
_CUT: Final = "cut"  # (t, _CUT, the interrupted response's id or None, None)
_SPEAKER: Final = "speaker"  # (t, _SPEAKER, the speaker's rate or None: detached, None)

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Recorder:
    """A recording of a session in progress, into one folder; from `SessionBase.record`.

    Use it as a context manager, or call `close` (closing the session closes
    it too). What it writes is in the module docstring: ``frames.jsonl``,
    ``conversation.wav`` (with ``audio=True``) and ``transcript.json``.

    Thread safety: every method may be called from any thread; `close` is
    idempotent and waits for the files to be complete.

    Attributes:
        path: The folder written to.
        audio: Whether audio (and image) payloads are kept in the frames, and
            ``conversation.wav`` written.
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
        on_close: Callable[[Recorder], None] | None = None,
    ) -> None:
        self.path = path
        self.audio = audio
        self.error: BaseException | None = None
        self._input_rate = input_rate
        self._output_rate = output_rate
        self._transcript = transcript
        self._on_close = on_close
        self._started = time.monotonic()
        # Frames and audio for the recorder thread, appended by the reader, the
        # senders, the speaker's player and interrupts: a deque's append and
        # popleft are atomic, so no lock; the thread drains it in batches.
        self._items: collections.deque[tuple[float, str, Any, Any]] = collections.deque()
        # Guards _closed: the first close() does the work, later ones wait for it.
        self._lock = threading.Lock()
        self._closed = False
        # The stop flag: set by close() (or the session's end); the thread
        # drains what is left, finishes the files and ends.
        self._stop = threading.Event()
        self._frames = open(path / "frames.jsonl", "wb")  # noqa: SIM115 - the thread closes it
        header_line = {"recording": FORMAT_VERSION, **header}
        header_line["started"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self._frames.write(_dumps(header_line).encode() + b"\n")
        # The recorder thread's own state, from here on.
        self._last_t = 0.0
        self._left: Channel | None = None
        self._right: Channel | None = None
        if audio:
            self._left = Channel(wav_rate, path)
            self._right = Channel(wav_rate, path)
        self._played_rate: int | None = None  # a speaker's rate: its blocks are the right channel
        self._cut: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._last_reply: str | None = None
        self._thread = threading.Thread(target=self._run, name="dashscope_sync-recorder")
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"<Recorder {str(self.path)!r} audio={self.audio} {state}>"

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    # Fed by the session's threads (never blocking) -------------------------------

    def put(self, item: tuple[float, str, bytes | str, ServerEvent | None]) -> None:
        """A frame that crossed the socket (``Connection.tap``)."""
        self._items.append(item)

    def interrupted(self, at: float, response_id: str | None) -> None:
        """The reply was interrupted at ``at``: what it would play after that is not heard."""
        self._items.append((at, _CUT, response_id, None))

    def played(self, block: bytes, rate: int) -> None:
        """A block the speaker gave its device (the speaker's tap; its player thread)."""
        self._items.append((time.monotonic(), _PLAYED, block, rate))

    def speaker(self, rate: int | None) -> None:
        """A speaker was attached (its rate) or detached (None): the right channel's source."""
        self._items.append((time.monotonic(), _SPEAKER, rate, None))

    def finish(self) -> None:
        """Stop recording without waiting (the session ended unclosed); the thread ends itself."""
        self._stop.set()

    # Closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop recording and complete the files; idempotent.

        Raises:
            DashScopeError: Writing the recording failed (``error`` says why).
        """
        with self._lock:
            first = not self._closed
            self._closed = True
        if first and self._on_close is not None:
            self._on_close(self)  # no frame is handed on after this
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        error = self.error
        if error is not None:
            raise DashScopeError(f"recording to {str(self.path)!r} failed: {error}") from error

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # The recorder thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(FLUSH_INTERVAL):
                self._drain()
            self._drain()
            self._finish()
        except BaseException as exc:
            logger.exception("recording to %r failed", str(self.path))
            self.error = exc
        finally:
            self._frames.close()
            for channel in (self._left, self._right):
                if channel is not None:
                    channel.close()

    def _drain(self) -> None:
        items = self._items
        lines: list[bytes] = []
        while items:
            t, kind, data, extra = items.popleft()
            at = t - self._started
            if kind == "in":
                lines.append(self._frame_in(at, data, extra))
            elif kind == "out":
                lines.append(self._frame_out(at, data))
            elif kind == _PLAYED:
                if self._right is not None and self._played_rate is not None:
                    self._right.add(at, data, extra)
            elif kind == _CUT:
                self._on_cut(at, data)
            else:  # _SPEAKER
                self._played_rate = data
        if lines:
            self._frames.write(b"".join(lines))
            self._frames.flush()

    def _offset(self, at: float) -> float:
        # Offsets never go back: frames in and out are handed on by two threads.
        if at < self._last_t:
            return self._last_t
        self._last_t = at
        return at

    def _frame_in(self, at: float, data: bytes, event: ServerEvent) -> bytes:
        t = self._offset(at)
        if type(event) is InvalidFrame:
            obj = parse_object(data)  # a frame of the wrong shape is still JSON
            if obj is None:
                invalid = {"length": event.length, "error": event.error}
                return b'{"t":%.6f,"dir":"in","invalid":%s}\n' % (t, _dumps(invalid).encode())
            return self._parsed_line(t, b"in", obj)
        if type(event) is ResponseAudioDelta:
            self._reply_audio(at, event)
        if b"\n" in data or b"\r" in data:
            # Valid JSON over several lines: one line of it instead.
            return self._parsed_line(t, b"in", dict(event.raw))
        if self.audio:
            return b'{"t":%.6f,"dir":"in","frame":%s}\n' % (t, data)
        blanked = blank_payloads(data, event.type)
        if blanked is None:
            return self._parsed_line(t, b"in", dict(event.raw))
        return _line(t, b"in", *blanked)

    def _frame_out(self, at: float, text: str) -> bytes:
        t = self._offset(at)
        data = text.encode()
        wire_type = client_frame_type(data)
        if self.audio:
            if wire_type == "input_audio_buffer.append":
                where = payload_text(data, "audio")
                if where is not None:
                    self._user_audio(at, binascii.a2b_base64(data[where[0] : where[1]]))
                    return b'{"t":%.6f,"dir":"out","frame":%s}\n' % (t, data)
            elif wire_type is not None:
                return b'{"t":%.6f,"dir":"out","frame":%s}\n' % (t, data)
            obj = parse_object(data)
            if obj is None:  # pragma: no cover - the library sends JSON objects only
                return b""
            if obj.get("type") == "input_audio_buffer.append" and isinstance(obj.get("audio"), str):
                self._user_audio(at, binascii.a2b_base64(obj["audio"]))
            return self._parsed_line(t, b"out", obj)
        blanked = None if wire_type is None else blank_payloads(data, wire_type)
        if blanked is None:
            obj = parse_object(data)
            if obj is None:  # pragma: no cover - the library sends JSON objects only
                return b""
            return self._parsed_line(t, b"out", obj)
        return _line(t, b"out", *blanked)

    def _parsed_line(self, t: float, direction: bytes, obj: dict[str, Any]) -> bytes:
        omitted = {} if self.audio else blank_payloads_in(obj)
        return _line(t, direction, _dumps(obj).encode(), omitted)

    # The audio ---------------------------------------------------------------------------

    def _user_audio(self, at: float, pcm: bytes) -> None:
        rate = self._input_rate()
        if self._left is not None and rate is not None:
            self._left.add(at, pcm, rate)

    def _reply_audio(self, at: float, event: ResponseAudioDelta) -> None:
        self._last_reply = event.response_id
        if self._right is None or self._played_rate is not None or event.response_id in self._cut:
            return
        rate = self._output_rate()
        if rate is not None:
            self._right.add(at, event.delta, rate)

    def _on_cut(self, at: float, response_id: str | None) -> None:
        if self._right is not None:
            self._right.cut(at)
        cut = response_id if response_id is not None else self._last_reply
        if cut is not None:
            self._cut[cut] = None
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


def _line(t: float, direction: bytes, frame: bytes, omitted: Mapping[str, int]) -> bytes:
    """One ``frames.jsonl`` line."""
    if not omitted:
        return b'{"t":%.6f,"dir":"%s","frame":%s}\n' % (t, direction, frame)
    return b'{"t":%.6f,"dir":"%s","frame":%s,"omitted":%s}\n' % (
        t,
        direction,
        frame,
        _dumps(omitted).encode(),
    )
