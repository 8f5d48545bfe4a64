"""Glue between a session and a speaker / microphone: ``session.attach(...)``.

The speaker is fed from a handler (so on the handler thread, never the
socket reader), converted to the speaker's rate when the session's output
rate differs (an ``output_sample_rate`` the user chose). Barge-in is decided
by the state machine when ``speech_started`` arrives (see
``SessionState._on_speech_started``), which calls `Attachment.interrupt`
through the core's output hook at once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from .._errors import DashScopeError
from .._wire.events import ResponseAudioDelta, ResponseAudioDone, ResponseCreated
from .resample import resampler_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._core.dispatch import HandlerHandle
    from .feed import AudioSink
    from .resample import Resampler

__all__ = ["Attachment", "MicrophoneLike", "SpeakerLike"]


class SpeakerLike(Protocol):
    """What `RealtimeSession.attach` needs of a speaker (`Speaker` has it)."""

    @property
    def rate(self) -> int: ...

    @property
    def played_seconds(self) -> float: ...

    @property
    def written_seconds(self) -> float: ...

    @property
    def playing(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    def write(self, pcm: bytes) -> None: ...

    def mark_end(self) -> None: ...

    def interrupt(self) -> None: ...

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None: ...


class MicrophoneLike(Protocol):
    """What `RealtimeSession.attach` needs of a microphone (`Microphone` has it)."""

    def stream_to(
        self,
        session: AudioSink,
        *,
        gate: SpeakerLike | None = None,
        process: Callable[[bytes], bytes] | None = None,
    ) -> object: ...

    def stop_streaming(self) -> None: ...


class Attachment:
    """What ``attach`` set up; the session's output hook. See the module docstring.

    Thread safety: `interrupt` from any thread; the handlers run on the
    handler thread.
    """

    def __init__(
        self,
        speaker: SpeakerLike | None,
        microphone: MicrophoneLike | None,
        output_rate: Callable[[], int],
        interrupted: Callable[[str], bool] = lambda response_id: False,
        on_playback: Callable[[str, float], None] | None = None,
    ) -> None:
        self.speaker = speaker
        self.microphone = microphone
        # The session's output sample rate now (it follows session.updated).
        self._output_rate = output_rate
        # Handler thread only: the response whose audio is being played, and
        # the resampler to the speaker's rate for it (None: the rates match).
        self._playing: str | None = None
        self._resampler: Resampler | None = None
        # Guards _starts, _last and _sounding: where each response's audio
        # starts in the speaker's stream (its written_seconds then), the last
        # one fed, and whether the latest interrupt found anything sounding.
        self._lock = threading.Lock()
        self._starts: dict[str, float] = {}
        self._last: str | None = None
        self._sounding = False
        # Whether a response was interrupted, from the session's one record
        # of it: its audio still on the handler thread's way (a delta in
        # hand, the resampler's tail) is not played.
        self._interrupted = interrupted
        # Told (on the speaker's player thread) when each response's first
        # sample sounded: the core's playback_start figure.
        self._on_playback = on_playback
        self.handles: list[HandlerHandle] = []
        # What the speaker's one tap feeds (the echo canceller, a recorder),
        # by name; changed by the session's thread, installed whole.
        self._taps: dict[str, Callable[[bytes], None]] = {}

    # Handlers (handler thread) ---------------------------------------------------

    def on_created(self, event: ResponseCreated) -> None:
        speaker = self.speaker
        if speaker is None:
            return
        with self._lock:
            self._starts[event.response.id] = speaker.written_seconds
            self._last = event.response.id
            while len(self._starts) > 8:  # only the latest responses matter
                del self._starts[next(iter(self._starts))]

    def on_audio(self, event: ResponseAudioDelta) -> None:
        speaker = self.speaker
        if speaker is None or speaker.closed:
            return  # closed before the session (a `with` order): nowhere to play
        if self._interrupted(event.response_id):
            return
        if event.response_id != self._playing:
            # A new response: the rate is read once, as it was when it began.
            self._playing = event.response_id
            self._resampler = resampler_for(self._output_rate(), speaker.rate)
            self._watch_playback(speaker, event.response_id)
        resampler = self._resampler
        pcm = event.delta if resampler is None else resampler.process(event.delta)
        self._write(speaker, pcm)

    def on_audio_done(self, event: ResponseAudioDone) -> None:
        speaker = self.speaker
        if speaker is None:
            return
        resampler = self._resampler
        if (
            resampler is not None
            and event.response_id == self._playing
            and not self._interrupted(event.response_id)
        ):
            self._write(speaker, resampler.flush())  # the tail the filter held back
        self._playing = self._resampler = None
        speaker.mark_end()

    def _watch_playback(self, speaker: SpeakerLike, response_id: str) -> None:
        """Learn when this response's first sample (the next one written) sounds."""
        report = self._on_playback
        # Optional for a speaker (`Speaker` has it; a stand-in may not).
        notify = getattr(speaker, "notify_playback", None)
        if report is None or notify is None:
            return
        notify(lambda at: report(response_id, at))

    @staticmethod
    def _write(speaker: SpeakerLike, pcm: bytes) -> None:
        try:
            speaker.write(pcm)
        except DashScopeError:
            if not speaker.closed:
                raise

    # OutputHook ------------------------------------------------------------------

    def interrupt(self, response_id: str | None) -> tuple[str | None, float | None]:
        """Stop the speaker. With no running ``response_id``, the reply it was
        playing is the last one fed, but only if something was still queued or
        sounding: an interrupt of a silent speaker stopped no reply."""
        speaker = self.speaker
        if speaker is None:
            return response_id, None
        # Read before the stop: audio written after this was not sounding at
        # the call, and interrupt() discards it.
        sounding = speaker.playing
        with self._lock:
            self._sounding = sounding
            rid = response_id
            if rid is None and sounding:
                rid = self._last
            start = None if rid is None else self._starts.get(rid)
        speaker.interrupt()
        if start is None:
            return rid, None
        return rid, max(0.0, speaker.played_seconds - start)

    def silenced_at(self, timeout: float) -> float | None:
        """When the sound the last `interrupt` stopped went silent (monotonic seconds).

        Waits up to ``timeout`` seconds for the speaker's player thread to
        abort its stream; None without a speaker (or one that cannot say),
        and None when nothing was sounding at that interrupt: it silenced
        nothing, so it has no time to silence (rather than a 0 that would
        pull the metrics' percentiles down).
        """
        with self._lock:
            if not self._sounding:
                return None
        wait = getattr(self.speaker, "wait_silent", None)
        return None if wait is None else wait(timeout)

    # The speaker's tap ------------------------------------------------------------

    def set_tap(self, name: str, tap: Callable[[bytes], None] | None) -> None:
        """Feed ``tap`` each block the speaker plays, beside the other taps (None: stop)."""
        speaker = self.speaker
        if speaker is None:
            return
        taps = dict(self._taps)
        if tap is None:
            taps.pop(name, None)
        else:
            taps[name] = tap
        self._taps = taps
        if not taps:
            speaker.set_tap(None)
        elif len(taps) == 1:
            speaker.set_tap(next(iter(taps.values())))
        else:
            every = tuple(taps.values())

            def fan_out(block: bytes) -> None:
                for each in every:
                    each(block)

            speaker.set_tap(fan_out)

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        if self.speaker is not None:
            self.speaker.set_tap(None)
        if self.microphone is not None:
            self.microphone.stop_streaming()
