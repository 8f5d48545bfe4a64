"""The local server's Qwen-ASR-Realtime family, without I/O (SPEECH_FAMILIES.md §B).

Models named ``qwen3-asr-flash-realtime*`` get a speech recognition session
instead of a conversation: :class:`AsrState` answers every client event of the
connection with the steps to take (server events to send, or a
:class:`CloseConnection`), as ``_state.ProtocolState`` does for the other
families. Decisions depend on the audio alone, never on the wall clock.

What it recognises: nothing, honestly. A turn's transcript is

* the known words of a bundled demo clip (``dashscope_sync/_data/*.wav``)
  wherever the turn holds an exact excerpt of it (the words whose time falls
  inside the turn, so a clip cut in two by the VAD is transcribed in two
  parts);
* the text of audio made by :func:`spoken_pcm16`, which hides its text in the
  least significant bit of its samples (inaudible, and lost by any
  resampling or lossy codec);
* else a deterministic placeholder describing the audio
  (``[simulated transcript: 1.20 s of audio, peak -12.1 dBFS]``), or an empty
  transcript for digital silence.
"""

from __future__ import annotations

import base64
import binascii
import collections
import math
import sys
import wave
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Final

from ._audio import INPUT_SAMPLE_RATE, pcm16_peak, resample_pcm16, speech_for_text
from ._session import (
    ClientEventError,
    JSONDict,
    error_event,
    new_id,
    server_event,
    simulated_transcript,
    text_tokens,
)
from ._vad import EnergyVad, samples_to_ms

__all__ = [
    "ASR_EMOTIONS",
    "ASR_LANGUAGES",
    "ASR_MODELS",
    "AsrState",
    "CloseConnection",
    "is_asr_model",
    "spoken_pcm16",
    "spoken_text",
]

#: The documented Qwen-ASR-Realtime models (SPEECH_FAMILIES.md §B1), stable name first.
ASR_MODELS: Final = (
    "qwen3-asr-flash-realtime",
    "qwen3-asr-flash-realtime-2026-02-10",
    "qwen3-asr-flash-realtime-2025-10-27",
)
#: The documented ``input_audio_transcription.language`` codes (SPEECH_FAMILIES.md §B1).
ASR_LANGUAGES: Final = (
    "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id",
    "th", "tr", "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
)  # fmt: skip
#: The documented ``emotion`` values of transcription events (SPEECH_FAMILIES.md §B1).
ASR_EMOTIONS: Final = ("surprised", "neutral", "happy", "sad", "disgusted", "angry", "fearful")

_MODEL_PREFIX: Final = "qwen3-asr-flash-realtime"
_SAMPLE_RATES: Final = (16000, 8000)
# The wire names a client may send; the server echoes pcm as pcm16 (SPEECH_FAMILIES.md
# §E11). pcm16 is what the official SDK sends when given no transcription_params.
_FORMATS: Final = {"pcm": "pcm16", "pcm16": "pcm16", "opus": "opus"}
# The documented defaults (client events page, SDK); session.created's example shows
# 0.5 / 200 instead (§E10): the server announces the values it uses.
_DEFAULT_TURN_DETECTION: Final = {
    "type": "server_vad",
    "threshold": 0.2,
    "silence_duration_ms": 800,
}
_MAX_AUDIO_BYTES: Final = 15 * 1024 * 1024
_MAX_CORPUS_TOKENS: Final = 10_000
# Omni fields the official SDK's update_session always sends along (§B5, §E14): accepted
# and ignored, since the official ASR guide uses that SDK.
_SDK_FIELDS: Final = ("voice", "output_audio_format")
# An interim .text event per this much speech (the service sends them "high frequency").
INTERIM_SAMPLES: Final = INPUT_SAMPLE_RATE * 200 // 1000
# Audio kept before a speech onset: a clip's first syllable may start below the threshold.
_PADDING_SAMPLES: Final = INPUT_SAMPLE_RATE * 300 // 1000
# Words of a hypothesis still provisional (the interim's stash).
_STASH_WORDS: Final = 2
_MAX_COMMIT_INTERIMS: Final = 5
_ALREADY_STARTED: Final = "Session update error: session already started or finished or failed."


def is_asr_model(model: str) -> bool:
    """Whether ``model`` names a Qwen-ASR-Realtime model (by prefix, snapshots included)."""
    return model.startswith(_MODEL_PREFIX)


@dataclass(frozen=True)
class CloseConnection:
    """Close the WebSocket with this code and reason, after the steps before it."""

    code: int
    reason: str


AsrStep = JSONDict | CloseConnection
"""One thing for the connection to do: send an event, or close."""


# --------------------------------------------------------------------------
# Known words: the text hidden in spoken_pcm16 audio


# Marks each copy of the hidden text; with the CRC, no natural audio decodes by chance.
_MAGIC: Final = 0xA5D3_5A3C
_HEADER_BITS: Final = 32 + 32 + 16 + 16  # magic, clip samples, copy index, text bytes
_MAX_TEXT_BYTES: Final = 4096
# Bit 0 of every byte, as the bytes b"\x00" / b"\x01" (C speed, no Python loop per sample).
_LSB_TABLE: Final = bytes(value & 1 for value in range(256))
_BIG_ENDIAN: Final = sys.byteorder == "big"


def _bits(value: int, width: int) -> bytes:
    return bytes((value >> shift) & 1 for shift in range(width - 1, -1, -1))


def _number(bits: bytes | memoryview) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    return value


def _copy_bits(text: bytes, clip_samples: int, index: int) -> bytes:
    payload = b"".join(_bits(byte, 8) for byte in text)
    crc = zlib.crc32(text + clip_samples.to_bytes(4, "big")) & 0xFFFFFFFF
    return (
        _bits(_MAGIC, 32)
        + _bits(clip_samples, 32)
        + _bits(index, 16)
        + _bits(len(text), 16)
        + payload
        + _bits(crc, 32)
    )


def spoken_pcm16(text: str, *, sample_rate: int = INPUT_SAMPLE_RATE) -> bytes:
    """Generate speech-like PCM16 that the local ASR server transcribes as ``text``.

    The audio is the local server's synthetic voice (about 60 ms per
    character, at least 0.5 s, peaking near -12 dBFS), with ``text`` hidden
    in the least significant bit of its samples, repeated over the whole clip.
    The local server's Qwen-ASR-Realtime simulation reads it back, so a test
    knows what the transcript will be; resampling or a lossy codec destroys
    it (the server then says what it heard instead).

    Args:
        text: What the audio "says" (at most 4096 UTF-8 bytes, not empty).
        sample_rate: 16000 or 8000, the rates the ASR service takes.

    Returns:
        Little-endian signed 16-bit mono PCM.

    Example:
        >>> pcm = spoken_pcm16("hello world")
        >>> spoken_text(pcm)
        'hello world'
    """
    data = text.encode("utf-8")
    if not data or len(data) > _MAX_TEXT_BYTES:
        raise ValueError(f"text must be 1 to {_MAX_TEXT_BYTES} UTF-8 bytes, got {len(data)}")
    if sample_rate not in _SAMPLE_RATES:
        raise ValueError(f"sample_rate must be 16000 or 8000, got {sample_rate!r}")
    samples = array("h")
    samples.frombytes(speech_for_text(text, sample_rate=sample_rate))
    if _BIG_ENDIAN:
        samples.byteswap()
    # Copies start on multiples of the copy length, so a copy's index gives its offset.
    position = 0
    index = 0
    while position < len(samples):
        for bit in _copy_bits(data, len(samples), index):
            if position == len(samples):
                break
            samples[position] = (samples[position] & ~1) | bit
            position += 1
        index += 1
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples.tobytes()


@dataclass(frozen=True)
class _Alignment:
    """Where a known clip sits in a turn's audio, and the words it says when."""

    # (text, start, end) per stretch of speech, in the clip's samples.
    segments: tuple[tuple[str, int, int], ...]
    # The turn sample where the clip's sample 0 is (may be negative).
    offset: int
    language: str


def _find_hidden(pcm: bytes | memoryview) -> _Alignment | None:
    """The first intact copy of spoken_pcm16's hidden text in ``pcm``, as an alignment."""
    lsb = bytes(pcm[0 : len(pcm) - len(pcm) % 2 : 2]).translate(_LSB_TABLE)
    magic = _bits(_MAGIC, 32)
    start = lsb.find(magic)
    while start >= 0:
        header = memoryview(lsb)[start : start + _HEADER_BITS]
        if len(header) == _HEADER_BITS:
            clip_samples = _number(header[32:64])
            index = _number(header[64:80])
            size = _number(header[80:96])
            end = start + _HEADER_BITS + 8 * size + 32
            if 0 < size <= _MAX_TEXT_BYTES and end <= len(lsb):
                body = lsb[start + _HEADER_BITS : end - 32]
                data = bytes(_number(body[i : i + 8]) for i in range(0, len(body), 8))
                crc = _number(lsb[end - 32 : end])
                if zlib.crc32(data + clip_samples.to_bytes(4, "big")) == crc:
                    text = data.decode("utf-8", errors="replace")
                    copy_length = _HEADER_BITS + 8 * size + 32
                    return _Alignment(
                        ((text, 0, clip_samples),),
                        offset=start - index * copy_length,
                        language=_language_of(text),
                    )
        start = lsb.find(magic, start + 1)
    return None


def spoken_text(pcm: bytes) -> str | None:
    """The text hidden by :func:`spoken_pcm16` in ``pcm``, or None if there is none."""
    found = _find_hidden(pcm)
    return None if found is None else found.segments[0][0]


def _language_of(text: str) -> str:
    if any("\u4e00" <= char <= "\u9fff" for char in text):
        return "zh"
    if any("\u3040" <= char <= "\u30ff" for char in text):
        return "ja"
    if any("\uac00" <= char <= "\ud7af" for char in text):
        return "ko"
    return "en"


def _spaced(text: str) -> bool:
    """Whether words of ``text`` are separated by spaces (not Chinese or Japanese)."""
    return _language_of(text) not in ("zh", "ja")


# --------------------------------------------------------------------------
# Known words: the bundled demo clips


@dataclass(frozen=True)
class _Clip:
    """A bundled clip: its audio, what is said when, and excerpts to spot it by."""

    segments: tuple[tuple[str, int, int], ...]
    language: str
    # (clip sample, 20 ms of its bytes) at loud places, to find the clip in a turn.
    anchors: tuple[tuple[int, bytes], ...]


# What each bundled clip says, by stretch of speech (start and end in ms, read off its
# energy envelope): the VAD may cut a clip at a pause, and each part gets its words.
_CLIP_WORDS: Final = {
    "hello_16k.wav": (
        ("Hello!", 0, 600),
        ("What is the weather like in Hangzhou today?", 900, 3400),
    ),
}
_ANCHOR_SAMPLES: Final = INPUT_SAMPLE_RATE * 20 // 1000
_ANCHOR_STEP: Final = INPUT_SAMPLE_RATE * 100 // 1000


@lru_cache(maxsize=1)
def _bundled_clips() -> tuple[_Clip, ...]:
    clips: list[_Clip] = []
    folder = resources.files("dashscope_sync") / "_data"
    for name, words in _CLIP_WORDS.items():
        with (folder / name).open("rb") as file, wave.open(file) as wav:
            assert wav.getframerate() == INPUT_SAMPLE_RATE and wav.getsampwidth() == 2
            pcm = wav.readframes(wav.getnframes())
        anchors = []
        for start in range(0, len(pcm) // 2 - _ANCHOR_SAMPLES, _ANCHOR_STEP):
            piece = pcm[2 * start : 2 * (start + _ANCHOR_SAMPLES)]
            # Only loud excerpts: quiet ones could match silence anywhere.
            if pcm16_peak(piece) > 3000:
                anchors.append((start, piece))
        segments = tuple(
            (text, begin * INPUT_SAMPLE_RATE // 1000, end * INPUT_SAMPLE_RATE // 1000)
            for text, begin, end in words
        )
        clips.append(
            _Clip(segments, _language_of(" ".join(w for w, _, _ in words)), tuple(anchors))
        )
    return tuple(clips)


def _find_clip(pcm: bytes | memoryview) -> _Alignment | None:
    data = bytes(pcm)
    for clip in _bundled_clips():
        for position, anchor in clip.anchors:
            found = data.find(anchor)
            while found >= 0 and found % 2:
                found = data.find(anchor, found + 1)
            if found >= 0:
                return _Alignment(clip.segments, found // 2 - position, clip.language)
    return None


def _words_heard(alignment: _Alignment, first: int, end: int) -> str:
    """The words of ``alignment`` said between turn samples ``first`` and ``end``.

    A word counts once the middle of its share of its stretch of speech is in
    range; words without spaces (Chinese, Japanese) are split per character.
    """
    heard: list[str] = []
    for text, begin, finish in alignment.segments:
        spaced = _spaced(text)
        words = text.split() if spaced else list(text)
        span = (finish - begin) / max(1, len(words))
        for index, word in enumerate(words):
            middle = alignment.offset + begin + span * (index + 0.5)
            if first <= middle < end:
                heard.append(word + (" " if spaced else ""))
    return "".join(heard).strip()


class _Listener:
    """Recognises one turn as its audio grows: finds what it is once, then reads words.

    Scans only the audio added since the last look (plus an overlap as long as
    one hidden copy), so interim events on a long turn stay cheap.
    """

    _OVERLAP_BYTES = 2 * (_HEADER_BITS + 8 * _MAX_TEXT_BYTES + 32)

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._alignment: _Alignment | None = None
        self._scanned = 0

    def hypothesis(self, pcm: bytes | bytearray, end: int) -> tuple[str, str | None]:
        """The transcript of ``pcm[:end]`` and its language (None: not recognised)."""
        if self._alignment is None and end > self._scanned:
            window = memoryview(pcm)[max(0, self._scanned - self._OVERLAP_BYTES) : end]
            found = _find_hidden(window)
            if found is None and self._rate == INPUT_SAMPLE_RATE:
                found = _find_clip(window)
            if found is not None:
                skipped = max(0, self._scanned - self._OVERLAP_BYTES) // 2
                found = _Alignment(found.segments, found.offset + skipped, found.language)
                self._alignment = found
            self._scanned = end
        if self._alignment is not None:
            # Hidden text is timed in samples of the session's rate, clips in 16 kHz.
            return _words_heard(self._alignment, 0, end // 2), self._alignment.language
        usable = memoryview(pcm)[: end - end % 2]
        peak = pcm16_peak(usable)
        if peak == 0:
            return "", None
        # simulated_transcript counts 16 kHz bytes.
        return simulated_transcript(len(usable) * INPUT_SAMPLE_RATE // self._rate, peak), None


def _interim_split(hypothesis: str, final_part: bool) -> tuple[str, str]:
    """Split a hypothesis into confirmed ``text`` and provisional ``stash``."""
    if hypothesis.startswith("[simulated"):
        return "", hypothesis  # a description of the audio so far: all provisional
    spaced = _spaced(hypothesis)
    words = hypothesis.split(" ") if spaced else list(hypothesis)
    keep = len(words) - (0 if final_part else _STASH_WORDS)
    if keep <= 0:
        return "", hypothesis
    text = (" " if spaced else "").join(words[:keep])
    return text, hypothesis[len(text) :]


# --------------------------------------------------------------------------
# The session


class AsrState:
    """Session, audio buffer, VAD and turns of one Qwen-ASR-Realtime connection.

    The client events (SPEECH_FAMILIES.md §B2) are ``session.update`` (once,
    first), ``input_audio_buffer.append``, ``input_audio_buffer.commit``
    (manual mode only) and ``session.finish``; anything else is an invalid
    event type. Each handler returns the steps to take, in order, or raises
    :class:`~._session.ClientEventError`.

    Thread safety: not thread-safe; the owning connection serialises access.

    Args:
        model: The model named in the connection URL.
        server_vad: Run the VAD when ``turn_detection`` is set; False never
            hears speech (no VAD events, nothing transcribed under VAD).
    """

    def __init__(self, model: str, *, server_vad: bool = True) -> None:
        self.model = model
        self.session: JSONDict = {
            "id": new_id("sess_"),
            "object": "realtime.session",
            "model": model,
            "modalities": ["text"],
            "input_audio_format": "pcm16",
            "sample_rate": 16000,
            "input_audio_transcription": None,
            "turn_detection": dict(_DEFAULT_TURN_DETECTION),
        }
        #: The audio of the most recent turn, as appended (pcm at the session's rate, or opus).
        self.last_committed_audio = b""
        self._server_vad = server_vad
        self._updated = False
        self._started = False
        self._finished = False
        # The current turn's audio as appended, and the 16 kHz timeline sample of its start.
        self._audio = bytearray()
        self._buffer_start = 0
        self._timeline = 0
        self._vad: EnergyVad | None = None
        # Set between speech_started and the end of its turn.
        self._item_id: str | None = None
        self._next_interim = 0
        self._listener: _Listener | None = None
        # The (text, stash) of the current turn's last interim: an unchanged one is not resent.
        self._last_interim: tuple[str, str] | None = None
        self._previous_item_id: str | None = None
        # FIFO of error objects: the next turns end in .failed instead of .completed.
        self._failures: collections.deque[JSONDict] = collections.deque()

    def fail_next_transcription(self, error: JSONDict) -> None:
        """End the next turn with ``.failed`` carrying ``error`` instead of ``.completed``."""
        self._failures.append(dict(error))

    def handlers(self) -> dict[str, Callable[[JSONDict], Sequence[AsrStep]]]:
        """The handler of each client event type the family takes."""
        return {
            "session.update": self.session_update,
            "input_audio_buffer.append": self.audio_append,
            "input_audio_buffer.commit": self.audio_commit,
            "session.finish": self.session_finish,
        }

    def session_created(self) -> JSONDict:
        """Return the ``session.created`` event."""
        return server_event("session.created", session=self.session)

    # ------------------------------------------------------------------
    # Configuration

    @property
    def _rate(self) -> int:
        rate = self.session["sample_rate"]
        assert isinstance(rate, int)
        return rate

    @property
    def _opus(self) -> bool:
        return bool(self.session["input_audio_format"] == "opus")

    @property
    def _language(self) -> str | None:
        transcription = self.session.get("input_audio_transcription")
        language = transcription.get("language") if isinstance(transcription, dict) else None
        return language if isinstance(language, str) else None

    def session_update(self, frame: JSONDict) -> list[AsrStep]:
        """``session.update``: once, before any audio; a second one ends the session (1007)."""
        self._check_open()
        if self._updated or self._started:
            # A production proxy saw this error, then close code 1007 (SPEECH_FAMILIES.md §B2).
            error = error_event(
                "invalid_request_error",
                "invalid_value",
                _ALREADY_STARTED,
                param="session",
                client_event_id=_event_id(frame),
            )
            self._finished = True
            return [error, CloseConnection(1007, "session already started")]
        update = frame.get("session")
        if not isinstance(update, dict):
            raise _invalid(update, "session", "an object")
        session = dict(self.session)
        if "input_audio_format" in update:
            value = update["input_audio_format"]
            if value not in _FORMATS:
                raise _unsupported(value, "session.input_audio_format", ("pcm", "opus"))
            session["input_audio_format"] = _FORMATS[value]
        if "sample_rate" in update:
            value = update["sample_rate"]
            if isinstance(value, bool) or value not in _SAMPLE_RATES:
                raise _unsupported(value, "session.sample_rate", _SAMPLE_RATES)
            session["sample_rate"] = value
        if "input_audio_transcription" in update:
            session["input_audio_transcription"] = _transcription(
                update["input_audio_transcription"]
            )
        if "turn_detection" in update:
            session["turn_detection"] = _turn_detection(update["turn_detection"])
        if "modalities" in update and update["modalities"] != ["text"]:
            raise _unsupported(update["modalities"], "session.modalities", (["text"],))
        for key in update:
            if key not in session and key not in _SDK_FIELDS:
                raise ClientEventError(
                    f"Unknown parameter: 'session.{key}' is not a field of {self.model}.",
                    code="invalid_value",
                    param=f"session.{key}",
                )
        self.session = session
        self._updated = True
        return [server_event("session.updated", session=session)]

    def _check_open(self) -> None:
        if self._finished:
            raise ClientEventError(
                "Session is finished: no event is accepted after session.finish.",
                code="invalid_value",
                param="type",
            )

    # ------------------------------------------------------------------
    # Audio

    def audio_append(self, frame: JSONDict) -> list[AsrStep]:
        """``input_audio_buffer.append``: buffer the audio; under VAD, find the turns.

        No acknowledgement. Under VAD the steps are ``speech_started``, an
        interim ``.text`` per 200 ms of speech, and at each end of speech
        ``speech_stopped``, ``committed``, ``conversation.item.created`` and
        ``.completed``.
        """
        self._check_open()
        audio = _decode_base64(frame.get("audio"))
        if len(audio) > _MAX_AUDIO_BYTES:
            raise ClientEventError(
                f"Invalid audio: {len(audio)} bytes in one event; the limit is 15 MiB.",
                code="invalid_value",
                param="audio",
            )
        if not self._opus and len(audio) % 2:
            raise ClientEventError(
                f"Invalid audio: PCM16 needs an even number of bytes, got {len(audio)}.",
                code="invalid_value",
                param="audio",
            )
        if not audio:
            return []
        self._started = True
        if self._opus:
            # Opaque without a decoder: buffered for a manual commit, never heard by the VAD.
            self._audio.extend(audio)
            return []
        pcm16k = (
            audio if self._rate == INPUT_SAMPLE_RATE else resample_pcm16(audio, self._rate, 16000)
        )
        self._audio.extend(audio)
        self._timeline += len(pcm16k) // 2
        vad = self._current_vad()
        if vad is None:
            return []
        steps: list[AsrStep] = []
        for event in vad.feed(pcm16k):
            if event.kind == "start":
                steps.extend(self._interims_until(event.sample))
                steps.extend(self._speech_started(event.sample))
            else:
                steps.extend(self._interims_until(event.sample))
                steps.extend(self._speech_stopped(event.sample))
        steps.extend(self._interims_until(vad.analysed_end))
        if self._item_id is None:
            # Between turns only the padding before a next onset is worth keeping.
            self._drop_before(vad.analysed_end - _PADDING_SAMPLES)
        return steps

    def _current_vad(self) -> EnergyVad | None:
        settings = self.session["turn_detection"]
        if not self._server_vad or not isinstance(settings, dict):
            return None
        if self._vad is None:
            self._vad = EnergyVad(
                threshold=settings["threshold"],
                silence_duration_ms=settings["silence_duration_ms"],
            )
        return self._vad

    def _bytes_at(self, sample: int) -> int:
        """Byte offset in the turn buffer of 16 kHz timeline sample ``sample``."""
        native = (sample - self._buffer_start) * self._rate // INPUT_SAMPLE_RATE
        return max(0, min(len(self._audio), 2 * native))

    def _drop_before(self, sample: int) -> None:
        if sample <= self._buffer_start:
            return
        cut = self._bytes_at(sample)
        del self._audio[:cut]
        self._buffer_start += cut // 2 * INPUT_SAMPLE_RATE // self._rate

    def _speech_started(self, onset: int) -> list[AsrStep]:
        self._drop_before(onset - _PADDING_SAMPLES)
        self._item_id = new_id("item_")
        self._listener = _Listener(self._rate)
        self._next_interim = onset + INTERIM_SAMPLES
        return [
            server_event(
                "input_audio_buffer.speech_started",
                audio_start_ms=samples_to_ms(onset),
                item_id=self._item_id,
            )
        ]

    def _interims_until(self, sample: int) -> list[AsrStep]:
        steps: list[AsrStep] = []
        while self._item_id is not None and self._next_interim <= sample:
            steps.extend(self._interim(self._item_id, self._bytes_at(self._next_interim), False))
            self._next_interim += INTERIM_SAMPLES
        return steps

    def _interim(self, item_id: str, end: int, final_part: bool) -> list[AsrStep]:
        assert self._listener is not None
        hypothesis, detected = self._listener.hypothesis(self._audio, end)
        if not hypothesis:
            return []
        text, stash = _interim_split(hypothesis, final_part)
        if (text, stash) == self._last_interim:
            return []
        self._last_interim = (text, stash)
        return [
            server_event(
                "conversation.item.input_audio_transcription.text",
                item_id=item_id,
                content_index=0,
                language=self._language or detected or "en",
                emotion="neutral",
                text=text,
                stash=stash,
            )
        ]

    def _speech_stopped(self, end: int) -> list[AsrStep]:
        item_id = self._item_id
        assert item_id is not None
        steps: list[AsrStep] = [
            server_event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=samples_to_ms(end),
                item_id=item_id,
            )
        ]
        cut = self._bytes_at(end)
        steps.extend(self._commit(item_id, cut, interims=False))
        self._buffer_start += cut // 2 * INPUT_SAMPLE_RATE // self._rate
        return steps

    def _commit(self, item_id: str, cut: int, *, interims: bool) -> list[AsrStep]:
        """The events of a finished turn of ``self._audio[:cut]``; drops that audio."""
        listener = self._listener or _Listener(self._rate)
        steps: list[AsrStep] = [
            server_event(
                "input_audio_buffer.committed",
                previous_item_id=self._previous_item_id,
                item_id=item_id,
            ),
            server_event(
                "conversation.item.created",
                previous_item_id=self._previous_item_id,
                item={
                    "id": item_id,
                    "object": "realtime.item",
                    "type": "message",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_audio", "transcript": None}],
                },
            ),
        ]
        if self._opus:
            transcript = f"[simulated transcript: {cut} bytes of Opus audio, not decoded]"
            detected: str | None = None
        else:
            self._listener = listener
            if interims:
                count = min(_MAX_COMMIT_INTERIMS, math.ceil(cut / (2 * INTERIM_SAMPLES)))
                for step in range(1, count + 1):
                    end = cut * step // count
                    steps.extend(self._interim(item_id, end - end % 2, step == count))
            transcript, detected = listener.hypothesis(self._audio, cut)
        if self._failures:
            steps.append(
                server_event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item_id,
                    content_index=0,
                    error=self._failures.popleft(),
                )
            )
        else:
            steps.append(
                server_event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    language=self._language or detected or "en",
                    emotion="neutral",
                    transcript=transcript,
                )
            )
        self.last_committed_audio = bytes(self._audio[:cut])
        del self._audio[:cut]
        self._previous_item_id = item_id
        self._item_id = None
        self._listener = None
        self._last_interim = None
        return steps

    def audio_commit(self, frame: JSONDict) -> list[AsrStep]:
        """``input_audio_buffer.commit``: end the turn by hand (manual mode only).

        Steps: ``committed``, ``conversation.item.created``, interim
        ``.text`` events (up to five) and ``.completed``.
        """
        self._check_open()
        if isinstance(self.session["turn_detection"], dict):
            # "Disabled in VAD mode" (client events page); the error text is not documented.
            raise ClientEventError(
                "Error committing input audio buffer: input_audio_buffer.commit is disabled "
                "in server_vad mode; set turn_detection to null to commit by hand.",
                code="invalid_value",
                param="type",
            )
        if not self._audio:
            raise ClientEventError(
                "Error committing input audio buffer: buffer is empty.",
                code="input_audio_buffer_commit_empty",
            )
        return self._commit(new_id("item_"), len(self._audio), interims=True)

    def session_finish(self, frame: JSONDict) -> list[AsrStep]:
        """``session.finish``: the results still due, then ``session.finished``.

        Under VAD, speech still going on ends there (``speech_stopped`` at
        the end of the audio, and its turn); with no speech going on the
        answer is ``session.finished`` at once. In manual mode audio appended
        since the last commit is transcribed as a last turn. The server then
        waits for the client to close.
        """
        self._check_open()
        steps: list[AsrStep] = []
        if self._item_id is not None:
            steps.extend(self._interims_until(self._timeline))
            steps.extend(self._speech_stopped(self._timeline))
        elif self.session["turn_detection"] is None and self._audio:
            steps.extend(self._commit(new_id("item_"), len(self._audio), interims=True))
        self._finished = True
        steps.append(server_event("session.finished"))
        return steps


# --------------------------------------------------------------------------
# Validation


def _event_id(frame: JSONDict) -> str | None:
    event_id = frame.get("event_id")
    return event_id if isinstance(event_id, str) else None


def _invalid(value: Any, param: str, expected: str) -> ClientEventError:
    return ClientEventError(
        f"Invalid value: {value!r}. Expected {expected}.", code="invalid_value", param=param
    )


def _unsupported(value: Any, param: str, supported: Sequence[Any]) -> ClientEventError:
    return ClientEventError(
        f"Invalid value: {value!r}. Supported values are: "
        + ", ".join(repr(item) for item in supported)
        + ".",
        code="invalid_value",
        param=param,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _transcription(value: Any) -> JSONDict | None:
    param = "session.input_audio_transcription"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(value, param, "an object or null")
    out: JSONDict = {}
    for key, item in value.items():
        if key == "language":
            if item is not None and item not in ASR_LANGUAGES:
                raise _unsupported(item, f"{param}.language", ASR_LANGUAGES)
            if item is not None:
                out["language"] = item
        elif key == "corpus":
            if item is None:
                continue
            text = item.get("text") if isinstance(item, dict) else None
            if not isinstance(text, str) or set(item) != {"text"}:
                raise _invalid(item, f"{param}.corpus", 'an object {"text": "..."}')
            if text_tokens(text) > _MAX_CORPUS_TOKENS:
                raise ClientEventError(
                    f"Invalid value: corpus.text is longer than {_MAX_CORPUS_TOKENS} tokens.",
                    code="invalid_value",
                    param=f"{param}.corpus.text",
                )
            out["corpus"] = {"text": text}
        elif key != "model":
            # model: the official SDK sends it (null) without transcription_params.
            raise ClientEventError(
                f"Unknown parameter: '{param}.{key}'.", code="invalid_value", param=f"{param}.{key}"
            )
    return out


def _turn_detection(value: Any) -> JSONDict | None:
    param = "session.turn_detection"
    if value is None:
        return None  # manual mode
    if not isinstance(value, dict):
        raise _invalid(value, param, "an object or null")
    if value.get("type") != "server_vad":
        raise _unsupported(value.get("type"), f"{param}.type", ("server_vad",))
    out = dict(_DEFAULT_TURN_DETECTION)
    if "threshold" in value:
        threshold = value["threshold"]
        if not _is_number(threshold) or not -1.0 <= threshold <= 1.0:
            raise _invalid(threshold, f"{param}.threshold", "a number in [-1, 1]")
        out["threshold"] = threshold
    if "silence_duration_ms" in value:
        silence = value["silence_duration_ms"]
        if not _is_number(silence) or not isinstance(silence, int) or not 200 <= silence <= 6000:
            raise _invalid(silence, f"{param}.silence_duration_ms", "an integer in [200, 6000]")
        out["silence_duration_ms"] = silence
    for key in value:
        # prefix_padding_ms: the official SDK always sends it; the ASR docs do not list it.
        if key not in out and key != "prefix_padding_ms":
            raise ClientEventError(
                f"Unknown parameter: '{param}.{key}'.", code="invalid_value", param=f"{param}.{key}"
            )
    return out


def _decode_base64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _invalid(value, "audio", "a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientEventError(
            "Invalid audio: not valid base64.", code="invalid_value", param="audio"
        ) from None
