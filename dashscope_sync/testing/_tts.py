"""The local server's Qwen-TTS-Realtime dialect: text in, audio out (SPEECH_FAMILIES.md §A).

Pure protocol logic, no sockets or threads: :class:`TtsState` holds one
connection's session and text buffer and turns each client event into the
server events to send and the :class:`Synthesis` steps to stream;
:class:`TtsStream` produces the frames of one response for the connection's
response thread. The model, voice and language lists the server accepts for
this family live here, in one place.

What it simulates (documented for users in :class:`LocalRealtimeServer`):

* the audio is a deterministic speech-like tone pattern (``speech_for_text``)
  of 60 ms per character of the segment, at least 0.3 s, divided by
  ``speech_rate`` and scaled by ``volume`` / 50, at the session's
  ``sample_rate`` (``voice``, ``pitch_rate``, ``language_type``,
  ``bit_rate`` and ``instructions`` are checked and echoed, but do not
  change it);
* ``pcm`` (16-bit mono little-endian) and ``wav`` always; ``mp3`` and
  ``opus`` (Ogg Opus) when ``soundfile`` with a libsndfile that can write
  them is installed, else ``session.update`` refuses the format. Every
  response is one complete file in its format (a WAV header, an MP3 or an Ogg
  stream of its own), cut into deltas of about ``chunk_ms`` of audio each;
* ``server_commit`` mode synthesises each complete sentence as soon as it is
  appended (a segment ends after a CJK full stop, exclamation or question
  mark or semicolon, or a newline, after ``.!?;`` followed by a space, or
  at 200 characters), with no ``input_text_buffer.committed`` (no source
  says the service sends one);
  ``input_text_buffer.commit`` synthesises what is buffered at once, in both
  modes, and is answered by ``input_text_buffer.committed`` and a response
  (the live trace of SPEECH_FAMILIES.md §A4);
* ``session.finish`` synthesises the rest of the buffer in ``server_commit``
  mode (uncommitted text is dropped in ``commit`` mode), then sends
  ``session.finished`` after the last ``response.done`` and closes the
  connection (code 1000), as the client-events page and the SDK say.
"""

from __future__ import annotations

import base64
import copy
import io
import math
import re
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Final

from ._audio import speech_for_text
from ._session import ClientEventError, JSONDict, new_id, server_event, text_tokens

__all__ = [
    "TTS_LANGUAGES",
    "TTS_LEGACY_VOICES",
    "TTS_MODELS",
    "TTS_SAMPLE_RATES",
    "TTS_VOICES",
    "Synthesis",
    "TtsState",
    "TtsStream",
    "available_formats",
    "encode_audio",
    "is_tts_model",
    "synthesize_pcm",
]

#: Every documented Qwen-TTS-Realtime model name and snapshot (SPEECH_FAMILIES.md §A1).
TTS_MODELS: Final = (
    "qwen3-tts-flash-realtime",
    "qwen3-tts-flash-realtime-2025-11-27",
    "qwen3-tts-flash-realtime-2025-09-18",
    "qwen3-tts-instruct-flash-realtime",
    "qwen3-tts-instruct-flash-realtime-2026-01-22",
    "qwen3-tts-vd-realtime-2026-01-15",
    "qwen3-tts-vd-realtime-2025-12-16",
    "qwen3-tts-vc-realtime-2026-01-15",
    "qwen3-tts-vc-realtime-2025-11-27",
    "qwen-tts-realtime",
    "qwen-tts-realtime-latest",
    "qwen-tts-realtime-2025-07-15",
)
#: The system voices of the Qwen3-TTS Flash and Instruct models (SPEECH_FAMILIES.md §A2).
TTS_VOICES: Final = (
    "Cherry",
    "Serena",
    "Ethan",
    "Chelsie",
    "Momo",
    "Vivian",
    "Moon",
    "Maia",
    "Kai",
    "Nofish",
    "Bella",
    "Jennifer",
    "Ryan",
    "Katerina",
    "Elias",
    "Jada",
    "Dylan",
    "Sunny",
    "Li",
    "Marcus",
    "Roy",
    "Peter",
    "Rocky",
    "Kiki",
    "Eric",
)
#: The voices of the legacy ``qwen-tts-realtime`` models (the Qwen-TTS voice list).
TTS_LEGACY_VOICES: Final = ("Cherry", "Serena", "Ethan", "Chelsie", "Dylan", "Jada", "Sunny")
#: ``language_type`` values (SPEECH_FAMILIES.md §A2).
TTS_LANGUAGES: Final = (
    "Auto",
    "Chinese",
    "English",
    "German",
    "Italian",
    "Portuguese",
    "Spanish",
    "Japanese",
    "Korean",
    "French",
    "Russian",
)
#: ``sample_rate`` values; the legacy models take 24000 only.
TTS_SAMPLE_RATES: Final = (8000, 16000, 24000, 48000)
_FORMATS: Final = ("pcm", "wav", "mp3", "opus")
_DEFAULT_VOICE: Final = "Cherry"

_SESSION_UPDATE_ERROR: Final = (
    "Session update error: session already started or finished or failed."
)
# The controls the legacy models do not take, and the Instruct-only fields.
_NOT_LEGACY: Final = ("speech_rate", "volume", "pitch_rate", "bit_rate")
_INSTRUCT_ONLY: Final = ("instructions", "optimize_instructions")
_KNOWN_FIELDS: Final = frozenset(
    {
        "voice",
        "mode",
        "language_type",
        "response_format",
        "sample_rate",
        *_NOT_LEGACY,
        *_INSTRUCT_ONLY,
        # Sent by the official SDK only, never documented: accepted and echoed.
        "enable_tn",
    }
)
# The documented values and ranges of the other fields (SPEECH_FAMILIES.md §A2).
_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "mode": ("server_commit", "commit"),
    "language_type": TTS_LANGUAGES,
}
# (low, high, integer); bit_rate in kbps, for opus (the SDK says mp3 too).
_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    "speech_rate": (0.5, 2.0, False),
    "pitch_rate": (0.5, 2.0, False),
    "volume": (0, 100, True),
    "bit_rate": (6, 510, True),
}
_TYPES: Final[dict[str, type]] = {
    "instructions": str,
    "optimize_instructions": bool,
    "enable_tn": bool,
}
# The documented cap on instructions; counted with the server's token estimate.
_MAX_INSTRUCTION_TOKENS: Final = 1600
# Fields the server owns; an update naming them is not an error, they just stay.
_READ_ONLY: Final = frozenset({"id", "object", "model"})

# Speaking rate of the simulated voice, and the shortest segment.
_MS_PER_CHAR: Final = 60.0
_MIN_SECONDS: Final = 0.3
# server_commit cuts a segment after CJK sentence ends or a newline at once,
# after Latin ones only once a space follows (so "3.14" is not cut), and
# anything longer than _MAX_SEGMENT characters without such an end.
_SEGMENT_END: Final = re.compile("[\u3002\uff01\uff1f\uff1b\n]|[.!?;](?=\\s)")
_MAX_SEGMENT: Final = 200
# Legacy models bill audio tokens: 50 per second, at least 50.
_LEGACY_AUDIO_TOKENS_PER_SECOND: Final = 50


def is_tts_model(model: str) -> bool:
    """Whether ``model`` names a Qwen-TTS-Realtime model (by prefix, snapshots included)."""
    return model.startswith(("qwen3-tts-", "qwen-tts-realtime"))


def _kind(model: str) -> str:
    """``legacy``, ``instruct``, ``vd``, ``vc`` or ``flash``."""
    if model.startswith("qwen-tts-realtime"):
        return "legacy"
    for kind in ("instruct", "vd", "vc"):
        if model.startswith(f"qwen3-tts-{kind}-"):
            return kind
    return "flash"


# --------------------------------------------------------------------------
# Audio


@lru_cache(maxsize=1)
def available_formats() -> frozenset[str]:
    """The ``response_format`` values this installation can produce.

    ``pcm`` and ``wav`` always; ``mp3`` and ``opus`` when ``soundfile`` is
    importable and its libsndfile writes MPEG Layer III and Ogg Opus.
    """
    formats = {"pcm", "wav"}
    try:
        import soundfile
    except (ImportError, OSError):  # not installed, or libsndfile missing
        return frozenset(formats)
    if "MPEG_LAYER_III" in soundfile.available_subtypes("MP3"):
        formats.add("mp3")
    if "OPUS" in soundfile.available_subtypes("OGG"):
        formats.add("opus")
    return frozenset(formats)


def synthesize_pcm(
    text: str, *, sample_rate: int, speech_rate: float = 1.0, volume: int = 50
) -> bytes:
    """The simulated voice for ``text``: PCM16 mono at ``sample_rate``.

    60 ms per character (at least 0.3 s), divided by ``speech_rate``; the
    amplitude is scaled by ``volume / 50`` (0 is silence).
    """
    seconds = max(_MIN_SECONDS, len(text) * _MS_PER_CHAR / 1000.0) / speech_rate
    pcm = speech_for_text(text, sample_rate=sample_rate, ms_per_char=0.0, min_seconds=seconds)
    if volume == 50:
        return pcm
    # The pattern peaks at about 0.35 of full scale, so twice that cannot clip.
    gain = volume / 50.0
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":  # the wire is little-endian
        samples.byteswap()
    scaled = array("h", (int(sample * gain) for sample in samples))
    if sys.byteorder == "big":
        scaled.byteswap()
    return scaled.tobytes()


def _wav_header(data_bytes: int, sample_rate: int) -> bytes:
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", 36 + data_bytes),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16),
            b"data",
            struct.pack("<I", data_bytes),
        )
    )


def encode_audio(pcm: bytes, response_format: str, sample_rate: int) -> bytes:
    """Encode PCM16 mono as one complete file of ``response_format``.

    Raises:
        ValueError: For a format :func:`available_formats` does not list.
    """
    if response_format == "pcm":
        return pcm
    if response_format == "wav":
        return _wav_header(len(pcm), sample_rate) + pcm
    if response_format not in available_formats():
        raise ValueError(f"no encoder installed for {response_format!r}")
    import soundfile

    container, subtype = ("MP3", "MPEG_LAYER_III") if response_format == "mp3" else ("OGG", "OPUS")
    out = io.BytesIO()
    with soundfile.SoundFile(
        out, "w", samplerate=sample_rate, channels=1, format=container, subtype=subtype
    ) as sound:
        sound.buffer_write(pcm, dtype="int16")
    return out.getvalue()


# --------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class Synthesis:
    """A segment of text to synthesise: the connection streams ``stream``."""

    stream: TtsStream


class TtsStream:
    """The frames of one TTS response (SPEECH_FAMILIES.md §A3, live-trace order).

    ``response.created``, ``output_item.added``, ``content_part.added``,
    ``response.audio.delta`` x N, ``response.audio.done``,
    ``content_part.done``, ``output_item.done``, ``response.done`` with
    ``usage.characters`` (the legacy models: token usage instead).

    Thread safety: not thread-safe; one streaming thread owns an instance.
    """

    def __init__(self, text: str, session: JSONDict, *, legacy: bool, chunk_ms: int) -> None:
        self.response_id = new_id("resp_")
        self.item_id = new_id("item_")
        self.text = text
        self._voice = session.get("voice")
        self._format = str(session["response_format"])
        self._rate = int(session["sample_rate"])
        self._speech_rate = float(session.get("speech_rate", 1.0))
        self._volume = int(session.get("volume", 50))
        self._legacy = legacy
        self._chunk_ms = chunk_ms
        self._part_added = False
        self._audio_done = False
        self._body_complete = False
        self._pcm_seconds = 0.0

    def _response(self, status: str) -> JSONDict:
        return {
            "id": self.response_id,
            "object": "realtime.response",
            "conversation_id": "",
            "status": status,
            "voice": self._voice,
            "output": [],
        }

    def _item(self, status: str, content: list[JSONDict]) -> JSONDict:
        return {
            "id": self.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def _part_event(self, event_type: str, **fields: Any) -> JSONDict:
        return server_event(
            event_type,
            response_id=self.response_id,
            item_id=self.item_id,
            output_index=0,
            content_index=0,
            **fields,
        )

    def created_event(self) -> JSONDict:
        """Return ``response.created``."""
        return server_event("response.created", response=self._response("in_progress"))

    def _chunks(self) -> Iterator[bytes]:
        pcm = synthesize_pcm(
            self.text, sample_rate=self._rate, speech_rate=self._speech_rate, volume=self._volume
        )
        self._pcm_seconds = len(pcm) / (2.0 * self._rate)
        data = encode_audio(pcm, self._format, self._rate)
        # As many deltas as chunk_ms pieces of the audio, each an equal share
        # of the encoded bytes (the WAV header rides in the first one).
        pieces = max(1, math.ceil(len(pcm) / (2 * self._rate * self._chunk_ms / 1000)))
        bounds = [len(data) * index // pieces for index in range(pieces + 1)]
        for start, end in pairwise(bounds):
            if end > start:
                yield data[start:end]

    def body_frames(self) -> Iterator[tuple[JSONDict, bool]]:
        """Yield ``(frame, is_delta)`` from ``output_item.added`` to ``output_item.done``."""
        yield (
            server_event(
                "response.output_item.added",
                response_id=self.response_id,
                output_index=0,
                item=self._item("in_progress", []),
            ),
            False,
        )
        yield (
            self._part_event("response.content_part.added", part={"type": "audio", "text": ""}),
            False,
        )
        self._part_added = True
        for chunk in self._chunks():
            delta = base64.b64encode(chunk).decode("ascii")
            yield self._part_event("response.audio.delta", delta=delta), True
        self._audio_done = True
        yield self._part_event("response.audio.done"), False
        part = {"type": "audio", "text": ""}
        yield self._part_event("response.content_part.done", part=part), False
        yield (
            server_event(
                "response.output_item.done",
                response_id=self.response_id,
                output_index=0,
                item=self._item("completed", [part]),
            ),
            False,
        )
        self._body_complete = True

    def owed_done_frames(self) -> list[JSONDict]:
        """``response.audio.done`` when a cancel stopped the deltas."""
        if not self._part_added or self._audio_done:
            return []
        self._audio_done = True
        return [self._part_event("response.audio.done")]

    def done_event(
        self, status: str = "completed", status_details: JSONDict | None = None
    ) -> JSONDict:
        """Return ``response.done`` with its ``usage``."""
        response = self._response(status)
        response["modalities"] = ["text", "audio"]
        item_status = "completed" if self._body_complete else "incomplete"
        response["output"] = [self._item(item_status, [{"type": "audio", "transcript": ""}])]
        if status_details is not None:
            response["status_details"] = copy.deepcopy(status_details)
        if self._legacy:
            audio = max(
                _LEGACY_AUDIO_TOKENS_PER_SECOND,
                math.ceil(self._pcm_seconds * _LEGACY_AUDIO_TOKENS_PER_SECOND),
            )
            text = text_tokens(self.text)
            response["usage"] = {
                "total_tokens": text + audio,
                "input_tokens": text,
                "output_tokens": audio,
                "input_tokens_details": {"text_tokens": text},
                "output_tokens_details": {"text_tokens": 0, "audio_tokens": audio},
            }
        else:
            response["usage"] = {"characters": len(self.text)}
        return server_event("response.done", response=response)


# --------------------------------------------------------------------------
# Session


def _invalid(param: str, message: str) -> ClientEventError:
    return ClientEventError(message, code="invalid_value", param=f"session.{param}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


TtsStep = JSONDict | Synthesis
"""One thing for the connection to do: send an event, or stream a synthesis."""


class TtsState:
    """Session and text buffer of one Qwen-TTS-Realtime connection.

    Thread safety: not thread-safe; the owning connection serialises access.

    Args:
        model: The model named in the connection URL.
        session_id: The ``sess_...`` id to announce.
        chunk_ms: Audio per ``response.audio.delta``, in milliseconds.
    """

    def __init__(self, model: str, *, session_id: str, chunk_ms: int) -> None:
        self.model = model
        self._kind = _kind(model)
        self._chunk_ms = chunk_ms
        self.session: JSONDict = {
            "id": session_id,
            "object": "realtime.session",
            "mode": "server_commit",
            "model": model,
            "response_format": "pcm",
            "sample_rate": 24000,
        }
        if self._kind not in ("vd", "vc"):
            # Voice-design and voice-clone models speak only custom voices:
            # there is no default to announce.
            self.session["voice"] = _DEFAULT_VOICE
        self._buffer = ""
        self._updated = False
        self._started = False
        self._finished = False

    @property
    def legacy(self) -> bool:
        """Whether the model is a legacy ``qwen-tts-realtime`` one."""
        return self._kind == "legacy"

    def session_created(self) -> JSONDict:
        """Return the ``session.created`` event."""
        return server_event("session.created", session=copy.deepcopy(self.session))

    # ------------------------------------------------------------------
    # session.update

    def session_update(self, frame: JSONDict) -> list[TtsStep]:
        """``session.update``: once, before any text; validate, merge, echo the session."""
        if self._updated or self._started or self._finished:
            raise ClientEventError(_SESSION_UPDATE_ERROR, code="invalid_value")
        update = frame.get("session")
        if not isinstance(update, dict):
            raise ClientEventError(
                "Invalid 'session': expected an object.", code="invalid_value", param="session"
            )
        merged = {**self.session, **{k: v for k, v in update.items() if k not in _READ_ONLY}}
        for key in update:
            if key not in _KNOWN_FIELDS and key not in _READ_ONLY:
                raise ClientEventError(
                    f"Unknown parameter: {key!r} is not a field of {self.model} sessions.",
                    code="unknown_parameter",
                    param=f"session.{key}",
                )
            self._check_field(key, update[key])
        if "voice" not in merged:
            raise _invalid("voice", f"Missing voice: {self.model} needs a custom voice id.")
        merged.setdefault("language_type", "Auto")
        if not self.legacy:
            merged.setdefault("speech_rate", 1.0)
            merged.setdefault("volume", 50)
            merged.setdefault("pitch_rate", 1.0)
            if merged["response_format"] == "opus":
                merged.setdefault("bit_rate", 128)
        self.session = merged
        self._updated = True
        return [server_event("session.updated", session=copy.deepcopy(merged))]

    def _check_field(self, key: str, value: Any) -> None:
        if key in _NOT_LEGACY and self.legacy:
            raise _invalid(key, f"{key} is not supported by {self.model}.")
        if key in _INSTRUCT_ONLY and self._kind != "instruct":
            raise _invalid(key, f"{key} is only supported by the instruct models.")
        if key == "voice":
            self._check_voice(value)
        elif key == "response_format":
            self._check_format(value)
        elif key == "sample_rate":
            rates = (24000,) if self.legacy else TTS_SAMPLE_RATES
            if not _is_int(value) or value not in rates:
                raise _invalid(key, f"Invalid sample_rate: {value!r}. Expected one of {rates}.")
        elif key in _CHOICES and value not in _CHOICES[key]:
            raise _invalid(key, f"Invalid {key}: {value!r}. Expected one of {_CHOICES[key]}.")
        elif key in _RANGES:
            low, high, integer = _RANGES[key]
            ok = _is_int(value) if integer else _is_number(value)
            if not ok or not low <= value <= high:
                kind = "an integer" if integer else "a number"
                raise _invalid(
                    key, f"Invalid {key}: {value!r}. Expected {kind} in [{low}, {high}]."
                )
        elif key in _TYPES and not isinstance(value, _TYPES[key]):
            raise _invalid(key, f"Invalid {key}: {value!r}. Expected a {_TYPES[key].__name__}.")
        elif key == "instructions" and text_tokens(value) > _MAX_INSTRUCTION_TOKENS:
            raise _invalid(key, f"instructions too long: at most {_MAX_INSTRUCTION_TOKENS} tokens.")

    def _check_voice(self, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise _invalid("voice", f"Invalid voice: {value!r}. Expected a voice name.")
        if self._kind in ("vd", "vc"):
            return  # a designed or cloned voice id: any name the account made
        voices = TTS_LEGACY_VOICES if self.legacy else TTS_VOICES
        if value not in voices:
            raise _invalid(
                "voice",
                f"Invalid voice: {value!r} is not a voice of {self.model}. "
                f"Supported voices: {', '.join(voices)}.",
            )

    def _check_format(self, value: Any) -> None:
        formats = ("pcm",) if self.legacy else _FORMATS
        if value not in formats:
            raise _invalid(
                "response_format",
                f"Invalid response_format: {value!r}. Expected one of {list(formats)}.",
            )
        if value not in available_formats():
            raise _invalid(
                "response_format",
                f"Unsupported response_format: {value!r} cannot be encoded by this local server "
                "(it needs the soundfile package with MP3 and Opus support).",
            )

    # ------------------------------------------------------------------
    # Text buffer

    def _check_open(self, event_type: str) -> None:
        if self._finished:
            raise ClientEventError(
                f"Session is finished: {event_type} is not accepted after session.finish.",
                code="invalid_value",
            )

    def _synthesis(self, text: str) -> Synthesis:
        return Synthesis(TtsStream(text, self.session, legacy=self.legacy, chunk_ms=self._chunk_ms))

    def text_append(self, frame: JSONDict) -> list[TtsStep]:
        """``input_text_buffer.append``: buffer; server_commit synthesises whole sentences."""
        self._check_open("input_text_buffer.append")
        text = frame.get("text")
        if not isinstance(text, str):
            raise ClientEventError(
                f"Invalid text: {text!r}. Expected a string.", code="invalid_value", param="text"
            )
        self._started = True
        self._buffer += text
        if self.session["mode"] != "server_commit":
            return []
        steps: list[TtsStep] = []
        while True:
            cut = self._segment_end(self._buffer)
            if cut is None:
                return steps
            segment, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if segment.strip():
                steps.append(self._synthesis(segment))

    @staticmethod
    def _segment_end(buffer: str) -> int | None:
        match = _SEGMENT_END.search(buffer)
        if match is not None and match.end() <= _MAX_SEGMENT:
            return match.end()
        return _MAX_SEGMENT if len(buffer) >= _MAX_SEGMENT else None

    def text_commit(self, frame: JSONDict) -> list[TtsStep]:
        """``input_text_buffer.commit``: synthesise the buffer now; an empty one is an error."""
        self._check_open("input_text_buffer.commit")
        if not self._buffer.strip():
            raise ClientEventError(
                "Error committing input text buffer: the buffer is empty.",
                code="invalid_value",
                param="input_text_buffer",
            )
        text, self._buffer = self._buffer, ""
        return [
            server_event("input_text_buffer.committed", item_id=""),
            self._synthesis(text),
        ]

    def text_clear(self, frame: JSONDict) -> list[TtsStep]:
        """``input_text_buffer.clear``: drop the buffered text."""
        self._check_open("input_text_buffer.clear")
        self._buffer = ""
        return [server_event("input_text_buffer.cleared")]

    def finish(self) -> list[TtsStep]:
        """``session.finish``: synthesise what server_commit still buffers, then no more text."""
        self._check_open("session.finish")
        self._finished = True
        text, self._buffer = self._buffer, ""
        if self.session["mode"] == "server_commit" and text.strip():
            return [self._synthesis(text)]
        return []
