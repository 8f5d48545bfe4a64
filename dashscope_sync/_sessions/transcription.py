"""Speech recognition sessions (Qwen-ASR-Realtime): `TranscriptionSession` and its service.

A public session over a `SessionCore` (state machine, mailbox, dispatcher,
connection shell), as `RealtimeSession` is, sharing its state, receiving and
lifecycle through `SessionBase` (base.py), speaking the family's
wire (SPEECH_FAMILIES.md B): one ``session.update`` at connect, audio
appends, commits in manual mode only, ``session.finish`` -> ``session.finished``,
after which the client closes. The family's rules live in the state (a
second update refused, the commit refused under VAD) and its frames in
`TranscriptionConfig` and the codec; this module only drives them.

`UtteranceBook` turns the transcription events into `Utterance`
records: pure, no I/O, one per reader. Where each utterance's speech
started and ended is the session's one record, in its state
(`TranscriptSpans`), so every reader sees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._audio.attach import MicrophoneLike
from .._audio.files import load_audio
from .._audio.inputs import pcm16_buffer
from .._core.state import RequestKind, TranscriptSpans, ends_transcripts
from .._deadline import Deadline, check_timeout
from .._errors import (
    APIError,
    ConfigError,
    ConfigTypeError,
    DashScopeTimeout,
    TranscriptionFailedError,
    UsageError,
)
from .._fmt import seconds
from .._wire.codec import check_audio_append, dumps
from .._wire.config import NOT_GIVEN, NotGiven, RealtimeConfig, SessionUpdate, TurnDetection
from .._wire.events import (
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemInputAudioTranscriptionText,
    ErrorEvent,
    ServerEvent,
    SessionFinished,
    SessionInfo,
    SessionUpdated,
)
from .._wire.families import ModelFamily
from .._wire.transcription_config import TranscriptionConfig
from .base import OpenCore, SessionBase

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .._core.core import SessionCore

__all__ = [
    "Utterance",
    "UtteranceBook",
    "TranscriptionResult",
    "TranscriptionService",
    "TranscriptionSession",
]

logger = logging.getLogger("dashscope_sync")

#: The most audio one ``input_audio_buffer.append`` may carry (the service's limit).
#: The audio `transcribe` appends per event: 100 ms, the small chunks the docs ask for.
CHUNK_MS: Final = 100
#: What `transcribe` waits for the last transcripts past the audio's own length, by default.
FINISH_MARGIN: Final = 30.0
#: Languages written without spaces between sentences, for `TranscriptionResult.text`.
_UNSPACED: Final = frozenset({"zh", "yue", "ja"})


@attrs.frozen(kw_only=True)
class Utterance:
    """One transcript of one item (an utterance), interim or final.

    Interim ones come many times a second while the user speaks: each
    replaces the previous one of its ``item_id`` (show ``text + stash``,
    which ``str(transcript)`` gives). The final one (``final=True``) is the
    item's ``.completed`` transcript, with an empty ``stash``.

    Attributes:
        item_id: The utterance this transcript belongs to.
        text: The confirmed text so far (the whole transcript when final).
        stash: The provisional tail, which may still change.
        final: True for the item's completed transcript.
        language: The detected language (``"zh"``, ``"en"``...), when given.
        emotion: The speaker's emotion (``"neutral"``, ``"happy"``...), when given.
        speech_start_ms: Where the server's VAD heard the speech start, in ms
            of the session's audio (VAD mode; None otherwise).
        speech_end_ms: Where it heard the speech end, once it did.
    """

    item_id: str
    text: str
    stash: str = ""
    final: bool = False
    language: str | None = None
    emotion: str | None = None
    speech_start_ms: int | None = None
    speech_end_ms: int | None = None

    def __str__(self) -> str:
        return self.text + self.stash


@attrs.frozen(kw_only=True)
class TranscriptionResult:
    """What `TranscriptionService.transcribe` heard in a whole file or buffer.

    Attributes:
        text: The final transcripts joined (by a space, none after Chinese
            or Japanese text).
        transcripts: The final `Utterance` of each utterance, in order.
        language: The language most of the utterances were in, when given.
    """

    text: str
    transcripts: tuple[Utterance, ...]
    language: str | None

    @classmethod
    def of(cls, finals: list[Utterance]) -> TranscriptionResult:
        """The result of these final transcripts."""
        text = ""
        for transcript in finals:
            piece = transcript.text.strip()
            if not piece:
                continue
            if text and not _unspaced(text[-1]) and transcript.language not in _UNSPACED:
                text += " "
            text += piece
        counts: dict[str, int] = {}
        for transcript in finals:
            if transcript.language:
                counts[transcript.language] = counts.get(transcript.language, 0) + 1
        language = max(counts, key=counts.__getitem__) if counts else None
        return cls(text=text, transcripts=tuple(finals), language=language)


def _unspaced(char: str) -> bool:
    """Is this a character of a script written without spaces (CJK and kana)?"""
    return char >= "\u2e80"


#: Where an item's speech started and ended: ``(start ms, end ms)``, None unknown.
SpanOf = Callable[[str], "tuple[int | None, int | None]"]


class UtteranceBook:
    """Turns transcription events into `Utterance` records (pure: no I/O, no lock).

    A session's books read the VAD spans from the session's state (``span_of``,
    `SessionCore.speech_span`), which sees every event whoever consumes it;
    a book on its own keeps them from the events it takes. Not thread-safe:
    one reader owns one.
    """

    def __init__(self, span_of: SpanOf | None = None) -> None:
        # The spans this book records itself (standalone), else None: the session's state has them.
        self._own: TranscriptSpans | None = None
        if span_of is None:
            self._own = TranscriptSpans()
            span_of = self._own.of
        self._span_of = span_of

    def take(self, event: ServerEvent) -> Utterance | None:
        """The transcript an event carries, or None; raises what an event reports.

        Raises:
            TranscriptionFailedError: A ``...transcription.failed`` event.
            APIError: An ``error`` event that ends the iteration
                (`ends_transcripts`: any but a refused commit).
        """
        if self._own is not None:
            self._own.receive(event)
        kind = type(event)
        if kind is ConversationItemInputAudioTranscriptionText:
            assert isinstance(event, ConversationItemInputAudioTranscriptionText)
            start, end = self._span_of(event.item_id)
            return Utterance(
                item_id=event.item_id,
                text=event.text,
                stash=event.stash,
                language=event.language,
                emotion=event.emotion,
                speech_start_ms=start,
                speech_end_ms=end,
            )
        if kind is ConversationItemInputAudioTranscriptionCompleted:
            assert isinstance(event, ConversationItemInputAudioTranscriptionCompleted)
            start, end = self._span_of(event.item_id)
            return Utterance(
                item_id=event.item_id,
                text=event.transcript,
                final=True,
                language=event.language,
                emotion=event.emotion,
                speech_start_ms=start,
                speech_end_ms=end,
            )
        if kind is ConversationItemInputAudioTranscriptionFailed:
            assert isinstance(event, ConversationItemInputAudioTranscriptionFailed)
            raise _failed(event)
        if kind is ErrorEvent:
            assert isinstance(event, ErrorEvent)
            if ends_transcripts(event):
                raise APIError.from_event(event)
        return None


def _failed(event: ConversationItemInputAudioTranscriptionFailed) -> TranscriptionFailedError:
    error = event.error
    return TranscriptionFailedError(
        f"the transcription of {event.item_id or 'an item'} failed: "
        f"{error.message or 'no reason given'}",
        item_id=event.item_id,
        code=error.code or None,
        type=error.type or None,
        param=error.param or None,
    )


class TranscriptionSession(SessionBase[TranscriptionConfig]):
    """A Qwen-ASR-Realtime session, returned configured by ``client.transcription.connect``.

    Send audio with `append_audio` (and `commit_audio` in manual mode), read
    live transcripts with `transcripts`, end with `finish`. Every event is
    also delivered to `on` handlers and to `recv`/`events`/iteration/`wait_for`,
    as on `RealtimeSession`; `transcripts` reads the same buffer (each event goes to
    one reader).

    Thread safety: every method may be called from any thread; sends are
    serialised in call order.

    Attributes:
        config: The `TranscriptionConfig` the session was configured with.
    """

    def __init__(self, core: SessionCore, config: TranscriptionConfig) -> None:
        super().__init__(core, config)
        # The attached microphone, if any.
        self._microphone: MicrophoneLike | None = None
        # Guards `_microphone`, so two threads attaching cannot both start a stream.
        self._attach_lock = threading.Lock()

    # State ---------------------------------------------------------------------

    @property
    def family(self) -> ModelFamily:
        """Always `ModelFamily.QWEN_ASR`."""
        return ModelFamily.QWEN_ASR

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        mode = "vad" if self.config.vad else "manual"
        return f"<TranscriptionSession id={self.id!r} model={self.model!r} {mode} {state}>"

    # Sending -------------------------------------------------------------------

    def _configure(self, deadline: Deadline) -> SessionInfo:
        """Send the one ``session.update`` and wait for ``session.updated`` (connect)."""
        self._core.late_update_warning(SessionUpdate())  # the family's rule: once only
        session = self.config.as_session()
        event_id = self._core.ids.next()
        text = dumps({"event_id": event_id, "type": "session.update", "session": session})
        request = self._core.request(RequestKind.UPDATE, event_id, text, "session.update", session)
        result = self._core.await_request(request, deadline.remaining(), "connect()")
        assert isinstance(result, SessionUpdated)
        return result.session

    def update_session(self, config: TranscriptionConfig | Mapping[str, Any]) -> SessionInfo:
        """Refused: the service takes the configuration once, and connect sent it.

        The service answers a second ``session.update`` with an error and
        closes the connection (SPEECH_FAMILIES.md B2), so nothing is sent.

        Raises:
            UsageError: Always, with the reason; open a new session instead.
        """
        self._core.late_update_warning(SessionUpdate())
        raise UsageError("the configuration was sent at connect")  # not reached: refused above

    def append_audio(self, pcm: Buffer) -> str:
        """Append audio in the session's format (``config.input_audio_format``).

        ``pcm`` is named as on `RealtimeSession` (feeds call either). PCM:
        mono 16-bit little-endian at ``config.sample_rate``, as any
        C-contiguous buffer (``bytes``, ``array('h')``, a numpy ``int16``
        array...), taken without a copy. Opus: the encoded bytes. Send about
        100 ms at a time for live audio; there is no acknowledgement.
        Returns the event id it sent.

        Raises:
            ConfigTypeError: Not a buffer, or float samples (the message says how to convert).
            ConfigError: Empty, not whole 16-bit samples, a WAV file's bytes,
                several channels, or over the service's 15 MiB per append.
            SessionClosedError: The session is closed.
        """
        if self.config.input_audio_format == "pcm":
            data = pcm16_buffer(pcm, "audio")
        else:
            data = _opus_bytes(pcm)
        check_audio_append(data)
        return self._core.send_audio(data)

    def commit_audio(self) -> str:
        """End the utterance in the input buffer (``input_audio_buffer.commit``): manual mode only.

        The server answers ``input_audio_buffer.committed``, then the item's
        transcripts. Returns the event id it sent.

        Raises:
            UsageError: The session uses server VAD, which ends each turn
                itself (the service disables the commit then); nothing is sent.
            SessionClosedError: The session is closed.
        """
        self._core.check_commit()
        return self._core.send_simple("input_audio_buffer.commit")

    def finish(self, timeout: float | NotGiven | None = NOT_GIVEN) -> None:
        """End the session: ``session.finish``, wait for ``session.finished``, then close.

        An attached microphone is detached first (nothing is appended after
        ``session.finish``). The server transcribes what it still holds first: the last
        transcripts arrive before ``session.finished`` and stay readable
        through `transcripts` (and `recv`) after this returns. As the service
        documents, the client closes the connection then; a server that
        closes first ends the session just as cleanly.

        Args:
            timeout: The longest wait in seconds; None waits forever;
                default 10 s (``RealtimeConfig.request_timeout``).

        Raises:
            DashScopeTimeout: No ``session.finished`` in time (the session stays open).
            APIError: The server refused the finish.
            SessionClosedError, TransportError: The session ended first.
            UsageError: Called from a handler.
        """
        core = self._core
        limit = core.config.request_timeout if timeout is NOT_GIVEN else check_timeout(timeout)
        core.check_can_block("finish()")
        # The microphone first: audio appended after session.finish would reach a
        # session the server is ending, and its error would come after session.finished.
        self.detach()
        request = core.finish_session()
        core.await_request(request, limit, "finish()")
        self.close()

    def attach(self, *, microphone: MicrophoneLike) -> None:
        """Stream a microphone into the session (the ``[audio]`` extra's `Microphone`).

        The microphone's thread appends each block as it is captured; read
        the transcripts with `transcripts`. `detach` (or `close`) stops it.

        Raises:
            ConfigError: The session takes Opus, or the microphone's rate is
                not the session's ``sample_rate``.
            UsageError: A microphone is attached already.
        """
        if self.config.input_audio_format != "pcm":
            raise ConfigError("attach(microphone=...) streams PCM: the session takes Opus")
        rate = getattr(microphone, "rate", self.config.sample_rate)
        if rate != self.config.sample_rate:
            raise ConfigError(
                f"the microphone captures at {rate} Hz but the session takes "
                f"{self.config.sample_rate} Hz: use Microphone(rate={self.config.sample_rate})"
            )
        with self._attach_lock:
            if self._microphone is not None:
                raise UsageError("a microphone is attached already: detach() first")
            self._microphone = microphone
        try:
            microphone.stream_to(self)
        except BaseException:
            with self._attach_lock:
                self._microphone = None
            raise

    def detach(self) -> None:
        """Stop the attached microphone's stream; idempotent."""
        with self._attach_lock:
            microphone, self._microphone = self._microphone, None
        if microphone is not None:
            microphone.stop_streaming()

    # Receiving ---------------------------------------------------------------------

    def transcripts(self, timeout: float | None = None) -> Iterator[Utterance]:
        """Yield the transcripts as they come, until ``session.finished`` or the end.

        Interim transcripts (``final=False``) replace the previous one of
        their item; each item ends with its final transcript. Other events
        are consumed and skipped (handlers still see everything).

        Args:
            timeout: The longest wait for each next event, in seconds; its
                expiry raises `DashScopeTimeout`. None waits forever.

        Raises:
            TranscriptionFailedError: An item could not be transcribed (the
                event is delivered to handlers too); the iteration stops,
                call `transcripts` again to go on (the items in progress keep
                their ``speech_start_ms``: the session records them).
            APIError: The server sent an ``error`` that ends the iteration:
                any but a refused commit (``input_audio_buffer_commit_empty``,
                a commit's ``param``, "error committing input audio buffer"),
                which is skipped, as the audio and its transcripts go on
                (handlers still get it).
            TransportError: The connection ended abnormally.
        """
        core = self._core
        core.check_pull("transcripts()")
        return _iterate_transcripts(core, check_timeout(timeout))

    def _recording_rates(self) -> tuple[Callable[[], int | None], Callable[[], int | None]]:
        # Audio in, when it is PCM; text out.
        config = self.config
        rate = config.sample_rate if config.input_audio_format == "pcm" else None
        return (lambda: rate), (lambda: None)

    def _before_close(self) -> None:
        self.detach()


def _iterate_transcripts(core: SessionCore, timeout: float | None) -> Iterator[Utterance]:
    # A generator over the core only, so an abandoned iterator keeps no session alive.
    book = UtteranceBook(core.speech_span)
    while (event := core.next_event(Deadline(timeout), "transcripts()")) is not None:
        transcript = book.take(event)
        if transcript is not None:
            yield transcript
        elif type(event) is SessionFinished:
            return


def _opus_bytes(audio: object) -> bytes | memoryview:
    if isinstance(audio, str):
        raise ConfigTypeError("audio must be bytes of Opus data, not a str")
    try:
        view = memoryview(audio)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigTypeError(
            f"audio must be bytes of Opus data, got {type(audio).__name__}"
        ) from None
    data = view.cast("B") if view.c_contiguous else view.tobytes()
    if not len(data):
        raise ConfigError("audio is empty")
    return data


class _Collector:
    """What `transcribe` gathers on the handler thread (read after the session closed)."""

    def __init__(self, span_of: SpanOf) -> None:
        self._book = UtteranceBook(span_of)
        self.finals: list[Utterance] = []
        # The first failure reported; set by the handler thread, read by the
        # sender between chunks (one reference, written once).
        self.failure: APIError | None = None
        # Set with the failure, so the sender stops appending at once.
        self.failed = threading.Event()

    def __call__(self, event: ServerEvent) -> None:
        try:
            transcript = self._book.take(event)
        except APIError as exc:
            if self.failure is None:
                self.failure = exc
                self.failed.set()
            return
        if transcript is not None and transcript.final:
            self.finals.append(transcript)


class TranscriptionService:
    """``client.transcription``: speech recognition sessions (Qwen-ASR-Realtime).

    Thread safety: stateless beyond its client; use from any thread.
    """

    def __init__(self, open_core: OpenCore) -> None:
        self._open_core = open_core

    def connect(
        self,
        model: str | TranscriptionConfig | None = None,
        *,
        language: str | NotGiven | None = NOT_GIVEN,
        input_audio_format: str | NotGiven = NOT_GIVEN,
        sample_rate: int | NotGiven = NOT_GIVEN,
        corpus_text: str | NotGiven | None = NOT_GIVEN,
        turn_detection: TurnDetection | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        extra: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> TranscriptionSession:
        """Open a transcription session, configured: returns after ``session.updated``.

        Sends the configuration once (the service takes it once), so every
        setting is given here: a model name and keyword fields, or a
        `TranscriptionConfig` (keyword fields then override its own).

        Args:
            model: A model name (default ``qwen3-asr-flash-realtime``) or a
                `TranscriptionConfig`.
            language: The `TranscriptionConfig` field.
            input_audio_format: The `TranscriptionConfig` field.
            sample_rate: The `TranscriptionConfig` field.
            corpus_text: The `TranscriptionConfig` field.
            turn_detection: The `TranscriptionConfig` field.
            extra: The `TranscriptionConfig` field.
            timeout: Seconds for the upgrade, ``session.created`` and
                ``session.updated`` together; None for no limit; default the
                client's ``connect_timeout``.

        Raises:
            ConfigError: A bad setting (before connecting), or a model of
                another family.
            APIError: The server refused the connection or the configuration.
            AuthenticationError: As `RealtimeService.connect`.
            RateLimitError: As `RealtimeService.connect`.
            TransportError: As `RealtimeService.connect`.
            DashScopeTimeout: As `RealtimeService.connect`.
        """
        given = {
            name: value
            for name, value in (
                ("language", language),
                ("input_audio_format", input_audio_format),
                ("sample_rate", sample_rate),
                ("corpus_text", corpus_text),
                ("turn_detection", turn_detection),
                ("extra", extra),
            )
            if value is not NOT_GIVEN
        }
        return self._open(_make_config(model, given), timeout, buffered=True)

    def _open(
        self, config: TranscriptionConfig, timeout: float | NotGiven | None, *, buffered: bool
    ) -> TranscriptionSession:
        """Connect and configure; ``buffered=False`` turns the pull buffer off (handlers only)."""
        unbuffered: dict[str, Any] = {} if buffered else {"max_buffered_events": 0}
        options = RealtimeConfig(model=config.model, family=ModelFamily.QWEN_ASR, **unbuffered)
        core, deadline, _ = self._open_core(options, timeout, lambda c: c.keep_transcript_spans())
        session = TranscriptionSession(core, config)
        try:
            session._configure(deadline)
        except BaseException:
            core.abort()
            raise
        core.opened()
        logger.debug("transcription session %s ready (model %s)", session.id, config.model)
        return session

    def transcribe(
        self,
        audio: str | PathLike[str] | Buffer,
        model: str | TranscriptionConfig | None = None,
        *,
        language: str | NotGiven | None = NOT_GIVEN,
        corpus_text: str | NotGiven | None = NOT_GIVEN,
        turn_detection: TurnDetection | Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        sample_rate: int | NotGiven = NOT_GIVEN,
        realtime: bool = False,
        timeout: float | NotGiven | None = NOT_GIVEN,
    ) -> TranscriptionResult:
        """Transcribe a whole audio file or buffer in one call.

        A path is read with `load_audio` (any WAV; FLAC, OGG, MP3 with
        ``soundfile``), converted to the session's rate; a buffer is mono
        PCM16 at ``sample_rate`` (16 kHz by default). The audio is sent in
        100 ms appends, faster than real time (the service transcribes
        audio time, not wall time) or, with ``realtime=True``, at the pace
        of speech; then ``session.finish`` flushes the last utterance.

        Args:
            audio: A file path, or PCM16 bytes (or any buffer `append_audio` takes).
            model: A model name or a `TranscriptionConfig` (PCM only).
            language: As in `connect`.
            corpus_text: As in `connect`.
            turn_detection: As in `connect`.
            sample_rate: As in `connect`.
            realtime: Send at the pace of speech rather than as fast as possible.
            timeout: The longest time for the whole call in seconds:
                connecting, sending (at the pace of speech too) and waiting
                for the last transcripts; None for no limit (connecting then
                takes the client's ``connect_timeout``); default 30 s plus
                the audio's length.

        Returns:
            The `TranscriptionResult`: the text, the final transcripts, the language.

        Raises:
            ConfigError: Unreadable audio, audio that is not PCM16, a bad
                setting, or Opus (send it through `connect`), before connecting.
            TranscriptionFailedError: An utterance could not be transcribed.
            APIError: The service refused the session or the audio.
            DashScopeTimeout, TransportError: As `connect` and `finish`.
        """
        given = {
            name: value
            for name, value in (
                ("language", language),
                ("corpus_text", corpus_text),
                ("turn_detection", turn_detection),
                ("sample_rate", sample_rate),
            )
            if value is not NOT_GIVEN
        }
        config = _make_config(model, given)
        if config.input_audio_format != "pcm":
            raise ConfigError(
                "transcribe() sends PCM; for Opus, connect() and append_audio() the packets"
            )
        if not isinstance(realtime, bool):
            raise ConfigError(f"realtime must be True or False, got {realtime!r}")
        if isinstance(audio, (str, PathLike)):
            pcm = load_audio(audio, sample_rate=config.sample_rate)
        else:
            pcm = bytes(pcm16_buffer(audio, "audio"))
        if timeout is NOT_GIVEN:
            limit: float | None = FINISH_MARGIN + len(pcm) / 2 / config.sample_rate
        else:
            limit = check_timeout(timeout)
        # One budget from here: connecting, the (real-time) sending and the finish
        # all spend it, so `timeout` bounds the call the caller waits in.
        deadline = Deadline(limit)
        connect_in: float | NotGiven | None = NOT_GIVEN if limit is None else deadline.remaining()
        # Handlers only: a long file's interim events would overflow the pull buffer.
        with self._open(config, connect_in, buffered=False) as session:
            collector = _Collector(session._core.speech_span)
            session.on("*", collector)
            _send(session, pcm, config, realtime, collector, deadline)
            if collector.failure is None:
                if not config.vad:
                    session.commit_audio()
                session.finish(deadline.remaining())
        # Closed: the handler thread has handled every event received.
        if collector.failure is not None:
            raise collector.failure
        return TranscriptionResult.of(collector.finals)


def _send(
    session: TranscriptionSession,
    pcm: bytes,
    config: TranscriptionConfig,
    realtime: bool,
    collector: _Collector,
    deadline: Deadline,
) -> None:
    """Append ``pcm`` in 100 ms pieces; stop early when the server reported a failure.

    Raises:
        DashScopeTimeout: At the pace of speech, the deadline comes before
            the audio's end (raised when it comes, not when it is foreseen).
    """
    size = config.sample_rate * 2 * CHUNK_MS // 1000
    started = time.monotonic()
    for start in range(0, len(pcm), size):
        if realtime:
            due = started + start / 2 / config.sample_rate
            pause = max(0.0, due - time.monotonic())
            left = deadline.remaining()
            if left is not None and pause > left:
                # The next piece is due after the deadline: wait out the budget
                # (a failure still ends the wait early), then give up.
                if collector.failed.wait(left):
                    return
                raise DashScopeTimeout(
                    f"transcribe() did not finish within {seconds(deadline.timeout)}: "
                    "the audio plays longer at the pace of speech",
                    timeout=deadline.timeout,
                )
            # Woken early by a failure; otherwise the pace of speech.
            collector.failed.wait(pause)
        if collector.failed.is_set():
            return
        session.append_audio(pcm[start : start + size])


def _make_config(
    model: str | TranscriptionConfig | None, given: dict[str, Any]
) -> TranscriptionConfig:
    if isinstance(model, TranscriptionConfig):
        return attrs.evolve(model, **given) if given else model
    if model is not None and not isinstance(model, str):
        raise ConfigError(f"model must be a model name or a TranscriptionConfig, got {model!r}")
    if model is not None:
        given = {"model": model, **given}
    return TranscriptionConfig(**given)
