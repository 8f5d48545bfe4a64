"""Pure protocol logic of the local realtime server.

Ids, server events, error events, the default session and the validation of
``session.update`` / ``response.create`` parameters, the user-turn pieces a
response answers, the simulated reply text, tool-call selection and token
usage. Nothing here touches sockets or threads, so every rule can be read (and
tested) on its own; the wire shapes follow PROTOCOL.md section 3.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any

from ._audio import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE, pcm16_duration, peak_to_dbfs

__all__ = [
    "AudioInput",
    "ClientEventError",
    "ECHO_SENTENCE",
    "FunctionOutput",
    "JSONDict",
    "SIMULATED_REPLY_PREFIX",
    "TextInput",
    "TurnPiece",
    "apply_session_update",
    "audio_tokens",
    "check_modalities",
    "choose_tool_call",
    "compose_reply",
    "default_session",
    "error_event",
    "new_id",
    "parse_conversation_item",
    "parse_response_params",
    "server_event",
    "simulated_transcript",
    "split_words",
    "text_tokens",
    "usage",
]

JSONDict = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 21  # the length of the ids in the official examples

SIMULATED_REPLY_PREFIX = "This is a simulated reply from the local DashScope server."
ECHO_SENTENCE = "The audio of this reply is an echo of your audio, resampled to 24 kHz."

_MODALITIES_MESSAGE = (
    "Invalid modalities: {value!r}. Supported combinations are: ['text'] and ['audio', 'text']."
)
# Every family's types (MODEL_FAMILIES.md §4): smart_turn is Qwen-Audio's,
# speaker_detection LiveTranslate 3.8's.
_TURN_DETECTION_TYPES = ("server_vad", "semantic_vad", "smart_turn", "speaker_detection")
_DEFAULT_TURN_DETECTION: JSONDict = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 800,
    "create_response": True,
    "interrupt_response": True,
}
# Echoed by session.updated (PROTOCOL.md section 3) but absent from session.created.
_UPDATED_DEFAULTS: JSONDict = {
    "max_response_output_token": "inf",
    "max_tokens": 16384,
    "repetition_penalty": 1.05,
    "presence_penalty": 0.0,
    "top_k": 50,
    "top_p": 1.0,
    "seed": -1,
}
# Fields the server owns; a client cannot change them through session.update.
_READ_ONLY_SESSION_KEYS = frozenset({"id", "object", "model"})
_CLIP_CHARS = 120


def new_id(prefix: str) -> str:
    """Return a fresh random id such as ``event_RoUu4T8yExPMI37GKwaOC``."""
    return prefix + "".join(random.choices(_ID_ALPHABET, k=_ID_LENGTH))


def server_event(event_type: str, **fields: Any) -> JSONDict:
    """Build a server event with a fresh ``event_id``."""
    return {"event_id": new_id("event_"), "type": event_type, **fields}


def error_event(
    error_type: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
) -> JSONDict:
    """Build an ``error`` event in the documented shape.

    Args:
        error_type: ``invalid_request_error`` or ``server_error``.
        code: Machine-readable code, e.g. ``invalid_value``.
        message: Human-readable message.
        param: The offending parameter, when there is one.
        client_event_id: The ``event_id`` of the client event that failed.
    """
    error: JSONDict = {"type": error_type, "code": code, "message": message}
    if param is not None:
        error["param"] = param
    if client_event_id is not None:
        error["event_id"] = client_event_id
    return server_event("error", error=error)


class ClientEventError(Exception):
    """A client event that the server answers with an ``error`` event.

    The socket stays open: these are the recoverable ``invalid_request_error``
    cases of the protocol.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        param: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type

    def to_event(self, client_event_id: str | None) -> JSONDict:
        """Return the ``error`` event reporting this failure."""
        return error_event(
            self.error_type,
            self.code,
            self.message,
            param=self.param,
            client_event_id=client_event_id,
        )


# --------------------------------------------------------------------------
# Session


def default_session(model: str) -> JSONDict:
    """Return the configuration announced by ``session.created``."""
    return {
        "id": new_id("sess_"),
        "object": "realtime.session",
        "model": model,
        "modalities": ["text", "audio"],
        "voice": "Cherry",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm24",
        "input_audio_transcription": {"model": "gummy-realtime-v1"},
        "turn_detection": dict(_DEFAULT_TURN_DETECTION),
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
    }


def _invalid(value: Any, param: str, expected: str) -> ClientEventError:
    return ClientEventError(
        f"Invalid value: {value!r}. Expected {expected}.", code="invalid_value", param=param
    )


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is not a temperature.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_number(
    value: Any,
    param: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> None:
    kind = "an integer" if integer else "a number"
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    ok = _is_number(value) and (not integer or isinstance(value, int))
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        raise _invalid(value, param, f"{kind} in {interval}")


def check_modalities(value: Any, param: str) -> list[str]:
    """Validate a modalities list: ``["text"]`` or ``["text", "audio"]`` in any order."""
    if (
        isinstance(value, list)
        and all(isinstance(item, str) for item in value)
        and sorted(value) in (["text"], ["audio", "text"])
    ):
        return list(value)
    raise ClientEventError(
        _MODALITIES_MESSAGE.format(value=value), code="invalid_value", param=param
    )


def _check_turn_detection(
    value: Any, current: Any, default_type: str = "server_vad"
) -> JSONDict | None:
    param = "session.turn_detection"
    if value is None:
        return None  # manual mode
    if not isinstance(value, dict):
        raise _invalid(value, param, "an object or null")
    vad_type = value.get("type", default_type)
    if vad_type not in _TURN_DETECTION_TYPES:
        raise ClientEventError(
            f"Invalid value: {vad_type!r}. Supported values are: "
            + ", ".join(repr(t) for t in _TURN_DETECTION_TYPES)
            + ".",
            code="invalid_value",
            param=f"{param}.type",
        )
    if "threshold" in value:
        _check_number(value["threshold"], f"{param}.threshold", -1.0, 1.0)
    if "silence_duration_ms" in value:
        _check_number(
            value["silence_duration_ms"], f"{param}.silence_duration_ms", 200, 6000, integer=True
        )
    if "prefix_padding_ms" in value:
        _check_number(
            value["prefix_padding_ms"], f"{param}.prefix_padding_ms", 0, 60_000, integer=True
        )
    for flag in ("create_response", "interrupt_response"):
        if flag in value and not isinstance(value[flag], bool):
            raise _invalid(value[flag], f"{param}.{flag}", "a boolean")
    # Fields the client leaves out keep their current (or default) values,
    # the way the real server echoes prefix_padding_ms and the *_response flags.
    base = current if isinstance(current, dict) else _DEFAULT_TURN_DETECTION
    merged = copy.deepcopy(base)
    merged.update(copy.deepcopy(value))
    merged["type"] = vad_type
    return merged


def _tool_name(tool: Any) -> str | None:
    """Return the name of a Chat-Completions-style tool (or a flat one), else None."""
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) and name else None


def _check_optional(value: Any, param: str, kinds: tuple[type, ...], expected: str) -> None:
    if value is not None and not isinstance(value, kinds):
        raise _invalid(value, param, expected)


def _validate_session_fields(update: JSONDict, current: JSONDict) -> None:
    """Raise ClientEventError for the first invalid field of ``update``."""
    if "modalities" in update:
        check_modalities(update["modalities"], "session.modalities")
    for key in ("voice", "input_audio_format", "output_audio_format"):
        _check_optional(update.get(key), f"session.{key}", (str,), "a string")
    _check_optional(update.get("instructions"), "session.instructions", (str,), "a string")
    _check_optional(
        update.get("input_audio_transcription"),
        "session.input_audio_transcription",
        (dict,),
        "an object or null",
    )
    ranges: dict[str, tuple[float, float, bool, bool, bool]] = {
        # key: (low, high, low_open, high_open, integer)
        "temperature": (0.0, 2.0, False, True, False),
        "top_p": (0.0, 1.0, True, False, False),
        "top_k": (0, 2**31 - 1, False, False, True),
        "max_tokens": (1, 2**31 - 1, False, False, True),
        "presence_penalty": (-2.0, 2.0, False, False, False),
        "repetition_penalty": (0.0, math.inf, True, True, False),
        "seed": (0, 2**31 - 1, False, False, True),
    }
    for key, (low, high, low_open, high_open, integer) in ranges.items():
        # null switches top_k off and leaves the others at the model default.
        if update.get(key) is not None:
            _check_number(
                update[key],
                f"session.{key}",
                low,
                high,
                low_open=low_open,
                high_open=high_open,
                integer=integer,
            )
    for key in ("smooth_output", "enable_search"):
        _check_optional(update.get(key), f"session.{key}", (bool,), "a boolean or null")
    if "tools" in update and update["tools"] is not None:
        tools = update["tools"]
        if not isinstance(tools, list):
            raise _invalid(tools, "session.tools", "a list of tools")
        for index, tool in enumerate(tools):
            if _tool_name(tool) is None:
                raise ClientEventError(
                    "Invalid tool: expected {'type': 'function', 'function': {'name': ...}}.",
                    code="invalid_value",
                    param=f"session.tools[{index}]",
                )
    choice = update.get("tool_choice")
    if choice is not None and choice not in ("auto", "none") and not isinstance(choice, dict):
        raise ClientEventError(
            f"Invalid value: {choice!r}. Supported values are: 'auto' and 'none'.",
            code="invalid_value",
            param="session.tool_choice",
        )


def apply_session_update(
    current: JSONDict, update: Any, *, default_turn_type: str = "server_vad"
) -> JSONDict:
    """Validate a ``session.update`` payload and merge it into ``current``.

    Keys given with a null value are set to null (``turn_detection: null``
    selects manual mode); unknown keys are kept and echoed, as the real server
    is lenient about extra fields. ``id``, ``object`` and ``model`` cannot be
    changed.

    Args:
        current: The connection's session state (not modified).
        update: The ``session`` member of the client event.
        default_turn_type: The family's turn detection type, for a
            ``turn_detection`` that names none.

    Returns:
        The new full session state, as echoed by ``session.updated``.

    Raises:
        ClientEventError: If a field is invalid; nothing is merged then.
    """
    if not isinstance(update, dict):
        raise _invalid(update, "session", "an object")
    _validate_session_fields(update, current)
    merged = copy.deepcopy(current)
    for key, value in _UPDATED_DEFAULTS.items():
        merged.setdefault(key, value)
    for key, value in update.items():
        if key in _READ_ONLY_SESSION_KEYS:
            continue
        if key == "turn_detection":
            merged[key] = _check_turn_detection(value, current.get(key), default_turn_type)
        else:
            merged[key] = copy.deepcopy(value)
    _sync_voice(merged, update)
    _sync_nested(merged, update, current, default_turn_type)
    return merged


def _sync_nested(
    merged: JSONDict, update: JSONDict, current: JSONDict, default_turn_type: str
) -> None:
    """Take the nested shape of the 3.8 families into the flat keys the server acts on.

    ``audio.input.turn_detection`` (LiveTranslate 3.8) drives the simulated
    VAD like a flat ``turn_detection``, and ``output_modalities`` like
    ``modalities``; the nested values stay in the echo as sent.
    """
    audio = update.get("audio")
    audio_input = audio.get("input") if isinstance(audio, dict) else None
    if isinstance(audio_input, dict) and "turn_detection" in audio_input:
        merged["turn_detection"] = _check_turn_detection(
            audio_input["turn_detection"], current.get("turn_detection"), default_turn_type
        )
    if "output_modalities" in update:
        merged["modalities"] = check_modalities(
            update["output_modalities"], "session.output_modalities"
        )


def _sync_voice(merged: JSONDict, update: JSONDict) -> None:
    """Keep the flat ``voice`` and the nested ``audio.output.voice`` in step.

    The sources disagree on where the 3.8 families take the voice
    (MODEL_FAMILIES.md §10), so the local server accepts both and echoes
    the voice it took in both places it keeps one.
    """
    audio = update.get("audio")
    output = audio.get("output") if isinstance(audio, dict) else None
    nested = output.get("voice") if isinstance(output, dict) else None
    if isinstance(nested, str):
        merged["voice"] = nested
    elif isinstance(update.get("voice"), str):
        kept = merged.get("audio")
        kept_output = kept.get("output") if isinstance(kept, dict) else None
        if isinstance(kept_output, dict) and "voice" in kept_output:
            kept_output["voice"] = update["voice"]


def parse_response_params(params: Any) -> tuple[list[str] | None, str | None]:
    """Validate the optional ``response`` member of ``response.create``.

    Returns:
        ``(modalities, instructions)`` overrides; None means "use the session's".

    Raises:
        ClientEventError: If the object or one of its fields is invalid.
    """
    if params is None:
        return None, None
    if not isinstance(params, dict):
        raise _invalid(params, "response", "an object")
    modalities = params.get("modalities")
    if modalities is not None:
        modalities = check_modalities(modalities, "response.modalities")
    instructions = params.get("instructions")
    _check_optional(instructions, "response.instructions", (str,), "a string or null")
    return modalities, instructions


# --------------------------------------------------------------------------
# User turn


@dataclass(frozen=True)
class AudioInput:
    """Committed input audio: its statistics, and the PCM for echo replies."""

    num_bytes: int
    peak: int
    images: int
    pcm: bytes = field(default=b"", repr=False, compare=False)

    @property
    def seconds(self) -> float:
        """Duration of the 16 kHz PCM16 audio."""
        return pcm16_duration(self.num_bytes, INPUT_SAMPLE_RATE)


@dataclass(frozen=True)
class TextInput:
    """A user ``message`` item made of ``input_text`` parts."""

    text: str


@dataclass(frozen=True)
class FunctionOutput:
    """A ``function_call_output`` item."""

    call_id: str
    output: str


TurnPiece = AudioInput | TextInput | FunctionOutput


def simulated_transcript(num_bytes: int, peak: int) -> str:
    """Describe committed audio honestly instead of pretending to recognise it."""
    seconds = pcm16_duration(num_bytes, INPUT_SAMPLE_RATE)
    level = "silent" if peak <= 0 else f"peak {peak_to_dbfs(peak):.1f} dBFS"
    return f"[simulated transcript: {seconds:.2f} s of audio, {level}]"


def _message_text(content: Any, part_types: tuple[str, ...]) -> str:
    if not isinstance(content, list) or not content:
        raise _invalid(content, "item.content", "a non-empty list of text parts")
    texts: list[str] = []
    for index, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or part.get("type") not in part_types
            or not isinstance(part.get("text"), str)
        ):
            expected = " or ".join(f"{{'type': {kind!r}, 'text': <string>}}" for kind in part_types)
            raise _invalid(part, f"item.content[{index}]", expected)
        texts.append(part["text"])
    return "\n".join(texts)


def parse_conversation_item(
    item: Any, *, history: bool = False
) -> tuple[JSONDict, TurnPiece | None]:
    """Validate the ``item`` of ``conversation.item.create``.

    Supports user ``message`` items with ``input_text`` parts and
    ``function_call_output`` items; with ``history`` (Qwen-Audio, whose docs
    list them) also ``system`` and ``assistant`` messages and
    ``function_call`` items, which add to the conversation but not to the
    user turn.

    Returns:
        The item as echoed by ``conversation.item.created`` (with a server id
        unless the client gave one, ``object`` and ``status``) and the piece it
        adds to the next user turn (None for history).

    Raises:
        ClientEventError: With ``param`` ``item`` (or a field of it).
    """
    if not isinstance(item, dict):
        raise _invalid(item, "item", "an object")
    item_type = item.get("type")
    roles = ("system", "user", "assistant") if history else ("user",)
    piece: TurnPiece | None
    if item_type == "message":
        role = item.get("role")
        if role not in roles:
            raise _invalid(role, "item.role", " or ".join(repr(r) for r in roles))
        if role == "user":
            piece = TextInput(_message_text(item.get("content"), ("input_text",)))
        else:
            _message_text(item.get("content"), ("input_text", "text"))
            piece = None
    elif item_type == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise _invalid(call_id, "item.call_id", "a non-empty string")
        if not isinstance(output, str):
            raise _invalid(output, "item.output", "a string")
        piece = FunctionOutput(call_id, output)
    elif item_type == "function_call" and history:
        for key in ("call_id", "name"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise _invalid(item.get(key), f"item.{key}", "a non-empty string")
        if not isinstance(item.get("arguments"), str):
            raise _invalid(item.get("arguments"), "item.arguments", "a JSON string")
        piece = None
    else:
        kinds = (
            ("message", "function_call", "function_call_output")
            if history
            else ("message", "function_call_output")
        )
        raise ClientEventError(
            f"Invalid value: {item_type!r}. Supported values are: "
            + ", ".join(repr(kind) for kind in kinds)
            + ".",
            code="invalid_value",
            param="item.type",
        )
    echoed = copy.deepcopy(item)
    if not isinstance(echoed.get("id"), str) or not echoed["id"]:
        echoed["id"] = new_id("item_")
    echoed["object"] = "realtime.item"
    echoed["status"] = "completed"
    return echoed, piece


# --------------------------------------------------------------------------
# Replies


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _CLIP_CHARS else flat[: _CLIP_CHARS - 3] + "..."


def compose_reply(pieces: list[TurnPiece], instructions: str | None, *, echo: bool = False) -> str:
    """Return the deterministic reply text for a user turn.

    The text says plainly that it is simulated and describes what the server
    received, so a test (or a developer working offline) can see that input
    arrived without any model being involved. With ``echo`` it says that the
    reply audio is an echo of the user's audio.
    """
    parts = [SIMULATED_REPLY_PREFIX]
    for piece in pieces:
        if isinstance(piece, AudioInput):
            heard = f"I heard {piece.seconds:.2f} seconds of audio"
            if piece.images:
                plural = "s" if piece.images != 1 else ""
                heard += f" and saw {piece.images} image{plural}"
            parts.append(heard + ".")
        elif isinstance(piece, TextInput):
            parts.append(f'I read your message: "{_clip(piece.text)}".')
        else:
            parts.append(
                f'I received the output of function call {piece.call_id}: "{_clip(piece.output)}".'
            )
    if not pieces:
        parts.append("I did not receive any new input.")
    if echo:
        parts.append(ECHO_SENTENCE)
    if instructions:
        parts.append(f'My instructions were: "{_clip(instructions)}".')
    return " ".join(parts)


def split_words(text: str) -> list[str]:
    """Split text into word-sized deltas whose concatenation is exactly ``text``."""
    words = re.findall(r"\S+\s*", text)
    leading = text[: len(text) - len(text.lstrip())]
    if not words:
        return [text] if text else []
    words[0] = leading + words[0]
    return words


def _first_json_object(texts: list[str]) -> str | None:
    decoder = json.JSONDecoder()
    for text in texts:
        for match in re.finditer(r"\{", text):
            try:
                value, _ = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            if isinstance(value, dict):
                return json.dumps(value, ensure_ascii=False)
    return None


def choose_tool_call(
    session: JSONDict, pieces: list[TurnPiece], instructions: str | None
) -> tuple[str, str] | None:
    """Decide whether the simulated model calls a tool, and with what.

    The rule is deliberately simple and predictable: with a non-empty
    ``session.tools`` and ``tool_choice`` other than ``"none"``, a tool is
    called when a user text item of this turn contains the tool's name, or the
    effective instructions contain ``"call <name>"``. Never right after a
    ``function_call_output`` (so a tool loop always ends with a reply). The
    arguments are the first JSON object found in the user's text, else ``{}``.

    Returns:
        ``(name, arguments_json)``, or None for a normal reply.
    """
    tools = session.get("tools")
    if session.get("tool_choice") == "none" or not isinstance(tools, list) or not tools:
        return None
    if any(isinstance(piece, FunctionOutput) for piece in pieces):
        return None
    texts = [piece.text for piece in pieces if isinstance(piece, TextInput)]
    for tool in tools:
        name = _tool_name(tool)
        if name is None:
            continue
        mentioned = any(name in text for text in texts)
        if mentioned or (instructions is not None and f"call {name}" in instructions):
            return name, _first_json_object(texts) or "{}"
    return None


# --------------------------------------------------------------------------
# Usage


def text_tokens(text: str) -> int:
    """Deterministic token estimate: one token per 4 UTF-8 bytes, rounded up."""
    return (len(text.encode("utf-8")) + 3) // 4


def audio_tokens(num_bytes: int, sample_rate: int = OUTPUT_SAMPLE_RATE) -> int:
    """12.5 tokens per second of PCM16 audio, rounded up (the qwen3-omni-flash rate)."""
    samples = num_bytes // 2
    # ceil(samples / sample_rate * 12.5) in integer arithmetic.
    return (samples * 25 + 2 * sample_rate - 1) // (2 * sample_rate)


def usage(*, input_text: int, input_audio: int, output_text: int, output_audio: int) -> JSONDict:
    """Build the ``usage`` object of ``response.done``."""
    input_tokens = input_text + input_audio
    output_tokens = output_text + output_audio
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_tokens_details": {"text_tokens": input_text, "audio_tokens": input_audio},
        "output_tokens_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }
