"""Endpoints, model names, voices, audio formats and modalities.

Values come from ``PROTOCOL.md`` (the service's documentation and the
official SDK). Voices are listed for convenience only: the service keeps
adding voices, so nothing here validates a voice name.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "AUDIO_FORMAT_PCM",
    "AUDIO_FORMAT_PCM16",
    "AUDIO_FORMAT_PCM24",
    "DEFAULT_HTTP_BASE_URL",
    "DEFAULT_HTTP_BASE_URL_INTL",
    "DEFAULT_MODEL",
    "DEFAULT_REALTIME_URL",
    "DEFAULT_REALTIME_URL_INTL",
    "INPUT_SAMPLE_RATE",
    "MODALITIES_AUDIO",
    "MODALITIES_TEXT",
    "MODALITY_AUDIO",
    "MODALITY_TEXT",
    "MODEL_QWEN3_OMNI_FLASH_REALTIME",
    "MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_09_15",
    "MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_12_01",
    "MODEL_QWEN3_OMNI_FLASH_REALTIME_LATEST",
    "MODEL_QWEN_OMNI_TURBO_REALTIME",
    "MODEL_QWEN_OMNI_TURBO_REALTIME_2025_05_08",
    "MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST",
    "Modality",
    "OUTPUT_SAMPLE_RATE",
    "TRANSCRIPTION_MODEL_GUMMY",
    "TRANSCRIPTION_MODEL_QWEN3_ASR_FLASH",
    "VAD_SEMANTIC",
    "VAD_SERVER",
    "VOICES_QWEN3_OMNI_FLASH",
    "VOICES_QWEN_OMNI_TURBO",
    "VOICE_CHELSIE",
    "VOICE_CHERRY",
    "VOICE_ETHAN",
    "VOICE_SERENA",
]

#: The realtime endpoint in China (Beijing), the default region.
DEFAULT_REALTIME_URL: Final = "wss://dashscope.aliyuncs.com/api-ws/v1/realtime"
#: The realtime endpoint in the international (Singapore) region.
DEFAULT_REALTIME_URL_INTL: Final = "wss://dashscope-intl.aliyuncs.com/api-ws/v1/realtime"
#: The HTTP API base in China (Beijing); API keys are bound to their region.
DEFAULT_HTTP_BASE_URL: Final = "https://dashscope.aliyuncs.com/api/v1"
#: The HTTP API base in the international (Singapore) region.
DEFAULT_HTTP_BASE_URL_INTL: Final = "https://dashscope-intl.aliyuncs.com/api/v1"

#: ``qwen-omni-turbo-realtime``, the undated turbo model.
MODEL_QWEN_OMNI_TURBO_REALTIME: Final = "qwen-omni-turbo-realtime"
#: ``qwen-omni-turbo-realtime-latest``, the seeds' default model.
MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST: Final = "qwen-omni-turbo-realtime-latest"
#: ``qwen-omni-turbo-realtime-2025-05-08``, the dated turbo snapshot.
MODEL_QWEN_OMNI_TURBO_REALTIME_2025_05_08: Final = "qwen-omni-turbo-realtime-2025-05-08"
#: ``qwen3-omni-flash-realtime``, the undated Qwen3 flash model.
MODEL_QWEN3_OMNI_FLASH_REALTIME: Final = "qwen3-omni-flash-realtime"
#: ``qwen3-omni-flash-realtime-2025-09-15`` (17 voices).
MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_09_15: Final = "qwen3-omni-flash-realtime-2025-09-15"
#: ``qwen3-omni-flash-realtime-2025-12-01`` (49 voices).
MODEL_QWEN3_OMNI_FLASH_REALTIME_2025_12_01: Final = "qwen3-omni-flash-realtime-2025-12-01"
#: ``qwen3-omni-flash-realtime-latest``, named by the Go and Rust seed SDKs.
#:
#: PROTOCOL.md lists no such model: the documented names are the undated
#: `MODEL_QWEN3_OMNI_FLASH_REALTIME` and the dated snapshots. Kept for parity
#: with the seeds; prefer the documented names.
MODEL_QWEN3_OMNI_FLASH_REALTIME_LATEST: Final = "qwen3-omni-flash-realtime-latest"
#: The model used when none is given, as in the seed SDKs.
DEFAULT_MODEL: Final = MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST

VOICE_CHERRY: Final = "Cherry"
VOICE_SERENA: Final = "Serena"
VOICE_ETHAN: Final = "Ethan"
VOICE_CHELSIE: Final = "Chelsie"
#: Voices of ``qwen-omni-turbo-realtime`` (Chinese and English).
VOICES_QWEN_OMNI_TURBO: Final = (VOICE_CHERRY, VOICE_SERENA, VOICE_ETHAN, VOICE_CHELSIE)
#: Voices of ``qwen3-omni-flash-realtime`` and its 2025-09-15 snapshot; the
#: 2025-12-01 snapshot has more. Not validated: the list keeps growing.
VOICES_QWEN3_OMNI_FLASH: Final = (
    "Cherry", "Ethan", "Nofish", "Jennifer", "Ryan", "Katerina", "Elias", "Jada", "Dylan",
    "Sunny", "Li", "Marcus", "Roy", "Peter", "Rocky", "Kiki", "Eric",
)  # fmt: skip

#: Input and output audio format names. Input is always 16 kHz mono PCM16,
#: output 24 kHz mono PCM16; older docs name them ``pcm16``/``pcm24``, newer ``pcm``.
AUDIO_FORMAT_PCM16: Final = "pcm16"
AUDIO_FORMAT_PCM24: Final = "pcm24"
AUDIO_FORMAT_PCM: Final = "pcm"
#: Sample rate of the audio the service accepts (mono, 16-bit little-endian).
INPUT_SAMPLE_RATE: Final = 16_000
#: Sample rate of the audio the service returns (mono, 16-bit little-endian).
OUTPUT_SAMPLE_RATE: Final = 24_000

#: One output modality: ``"text"`` or ``"audio"``. ``modalities`` arguments
#: take a list of these, so a type checker flags ``modalities="text"``.
Modality = Literal["text", "audio"]

MODALITY_TEXT: Final[Literal["text"]] = "text"
MODALITY_AUDIO: Final[Literal["audio"]] = "audio"
#: Text-only replies.
MODALITIES_TEXT: Final[tuple[Modality]] = (MODALITY_TEXT,)
#: Spoken replies with their transcript (the service's default).
MODALITIES_AUDIO: Final[tuple[Modality, Modality]] = (MODALITY_TEXT, MODALITY_AUDIO)

#: The default `RealtimeConfig.max_message_size`: 16 MiB. The largest
#: documented event is a client's audio append (at most 15 MiB of base64);
#: the server's own events (deltas of ~100 ms of audio, ``response.done``,
#: the session echo with its instructions and tools) are far smaller, so a
#: message over this is a broken or hostile server, not a real event.
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024

#: The default `RealtimeConfig.max_buffered_bytes`: 64 MiB for the pull
#: buffer and as much for the handler backlog. A full default buffer of real
#: events (4096 deltas of ~100 ms of audio, ~6.6 KB each) is about 27 MB, so
#: only messages far larger than the service's reach it.
DEFAULT_MAX_BUFFERED_BYTES: Final = 64 * 1024 * 1024

#: Server-side voice activity detection, the default turn detection.
VAD_SERVER: Final = "server_vad"
#: Semantic turn detection (qwen3.5 and newer models only).
VAD_SEMANTIC: Final = "semantic_vad"

#: Input transcription model of qwen-omni-turbo and qwen3-omni-flash.
TRANSCRIPTION_MODEL_GUMMY: Final = "gummy-realtime-v1"
#: Input transcription model of qwen3.5 and newer models.
TRANSCRIPTION_MODEL_QWEN3_ASR_FLASH: Final = "qwen3-asr-flash-realtime"
