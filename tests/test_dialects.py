"""SessionUpdate shaped per family, the new fields' validation, and each family's refusals."""

from __future__ import annotations

from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._wire.dialects import encode_session
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

F = ds.ModelFamily


def enc(update: ds.SessionUpdate, family: ds.ModelFamily, model: str = "") -> dict[str, Any]:
    """The session object the encoder sends for a family."""
    return encode_session(update, family, model)


class TestLegacyOmni:
    """The legacy Omni dialect stays flat."""

    def test_flat_as_before(self) -> None:
        """Voice, formats and turn detection stay top level."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="Cherry",
            input_audio_format="pcm16",
            output_audio_format="pcm24",
            turn_detection=None,
        )
        assert enc(update, F.OMNI) == {
            "modalities": ["text", "audio"],
            "voice": "Cherry",
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm24",
            "turn_detection": None,
        }
        assert update.as_dict() == enc(update, F.OMNI)

    def test_omni_35_nested_formats_with_sample_rate(self) -> None:
        """A sample rate moves that format to audio.*.format, as the 3.5 docs show; voice stays flat."""
        update = ds.SessionUpdate(
            voice="Tina",
            input_audio_format="pcm",
            input_sample_rate=16000,
            output_sample_rate=24000,
            turn_detection=ds.TurnDetection(type=ds.VAD_SEMANTIC),
        )
        assert enc(update, F.OMNI, ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME) == {
            "voice": "Tina",
            "turn_detection": {"type": "semantic_vad"},
            "audio": {
                "input": {"format": {"type": "pcm", "sample_rate": 16000}},
                "output": {"format": {"type": "pcm", "sample_rate": 24000}},
            },
        }

    def test_omni_35_refuses_other_transcription_model(self) -> None:
        """Omni 3.5's transcription is fixed to qwen3-asr-flash-realtime."""
        update = ds.SessionUpdate(
            input_audio_transcription=ds.InputAudioTranscription(model="gummy-realtime-v1")
        )
        with pytest.raises(ds.ConfigError, match=r"Qwen-Omni .*qwen3-asr-flash"):
            enc(update, F.OMNI, ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME)
        enc(update, F.OMNI, ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)  # fine on qwen3-flash

    def test_omni_35_idle_timeout(self) -> None:
        """idle_timeout_ms goes inside turn_detection."""
        update = ds.SessionUpdate(turn_detection=ds.TurnDetection(idle_timeout_ms=5000))
        assert enc(update, F.OMNI) == {
            "turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}
        }

    def test_video(self) -> None:
        """video_representation_compact is sent as video.input.representation_compact."""
        update = ds.SessionUpdate(video_representation_compact="on")
        assert enc(update, F.OMNI) == {"video": {"input": {"representation_compact": "on"}}}


class TestOmni38:
    """Omni 3.8: the official SDK 2.0.2's shape by default, the docs' flat voice on request."""

    def test_sdk_shape(self) -> None:
        """Voice and formats nest under audio.*; modalities and turn_detection stay flat (§4.3)."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="longanlingxin",
            instructions="Be brief.",
            input_audio_transcription=None,
            turn_detection=None,
            input_audio_format="pcm",
            output_audio_format="pcm",
            input_sample_rate=16000,
            output_sample_rate=24000,
        )
        assert enc(update, F.OMNI_V38) == {
            "modalities": ["text", "audio"],
            "instructions": "Be brief.",
            "input_audio_transcription": None,
            "turn_detection": None,
            "audio": {
                "output": {
                    "voice": "longanlingxin",
                    "format": {"type": "pcm", "sample_rate": 24000},
                },
                "input": {"format": {"type": "pcm", "sample_rate": 16000}},
            },
        }

    def test_doc_shape_with_flat_voice(self) -> None:
        """voice_placement='flat' gives the docs' example (§4.3) exactly."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="Tina",
            turn_detection=ds.TurnDetection(),
            voice_placement="flat",
        )
        assert enc(update, F.OMNI_V38) == {
            "modalities": ["text", "audio"],
            "voice": "Tina",
            "turn_detection": {"type": "server_vad"},
        }

    def test_extra_audio_is_deep_merged(self) -> None:
        """A raw audio dict in extra merges into the nested shape instead of replacing it."""
        update = ds.SessionUpdate(voice="Tina", extra={"audio": {"output": {"speed": 1.2}}})
        assert enc(update, F.OMNI_V38) == {"audio": {"output": {"voice": "Tina", "speed": 1.2}}}


class TestLiveTranslate:
    """LiveTranslate 3 / 3.5: flat plus translation (§4.4)."""

    def test_doc_example(self) -> None:
        """The documented flat session.update, built from typed fields."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="Cherry",
            input_sample_rate=16000,
            input_audio_format="pcm",
            output_audio_format="pcm",
            input_audio_transcription=ds.InputAudioTranscription(
                model="qwen3-asr-flash-realtime", language="zh"
            ),
            translation=ds.Translation(
                language="en",
                glossary={"人工智能": "Artificial Intelligence"},
                skip_same_language_text=True,
                skip_same_language_audio=True,
            ),
            turn_detection=ds.TurnDetection(threshold=0.2, silence_duration_ms=700),
        )
        assert enc(update, F.LIVETRANSLATE) == {
            "modalities": ["text", "audio"],
            "voice": "Cherry",
            "sample_rate": 16000,
            "input_audio_format": "pcm",
            "output_audio_format": "pcm",
            "input_audio_transcription": {"model": "qwen3-asr-flash-realtime", "language": "zh"},
            "translation": {
                "language": "en",
                "corpus": {"phrases": {"人工智能": "Artificial Intelligence"}},
                "same_language_skip_options": {"skip_text": True, "skip_audio": True},
            },
            "turn_detection": {"type": "server_vad", "threshold": 0.2, "silence_duration_ms": 700},
        }

    def test_transcription_off(self) -> None:
        """Turning transcription off is {"model": null}, as the official SDK sends it."""
        update = ds.SessionUpdate(input_audio_transcription=None)
        assert enc(update, F.LIVETRANSLATE) == {"input_audio_transcription": {"model": None}}

    def test_voice_cloning(self) -> None:
        """Voice cloning sends enable_voice_clone and voice_clone_options.frequency."""
        update = ds.SessionUpdate(
            voice=ds.VOICE_CLONE, enable_voice_clone=True, voice_clone_frequency="always"
        )
        assert enc(update, F.LIVETRANSLATE) == {
            "voice": "default",
            "enable_voice_clone": True,
            "voice_clone_options": {"frequency": "always"},
        }


class TestLiveTranslate38:
    """LiveTranslate 3.8: output_modalities and audio.input.* (§4.5)."""

    def test_sdk_shape(self) -> None:
        """Modalities become output_modalities; format, turn detection and voice nest."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="default",
            input_audio_format="pcm",
            input_sample_rate=16000,
            turn_detection=ds.TurnDetection(type=ds.VAD_SPEAKER_DETECTION, threshold=0.5),
            enable_voice_clone=True,
            voice_clone_frequency="once",
            translation=ds.Translation(language="en", glossary={"machine learning": "ML"}),
        )
        assert enc(update, F.LIVETRANSLATE_V38) == {
            "output_modalities": ["text", "audio"],
            "audio": {
                "input": {
                    "format": {"type": "pcm", "sample_rate": 16000},
                    "turn_detection": {"type": "speaker_detection", "threshold": 0.5},
                },
                "output": {"voice": "default"},
            },
            "enable_voice_clone": True,
            "voice_clone_options": {"frequency": "once"},
            "translation": {"language": "en", "corpus": {"phrases": {"machine learning": "ML"}}},
        }

    def test_doc_shape_voice_top_level(self) -> None:
        """voice_placement='flat' puts the voice at the top level, as the docs' example does."""
        update = ds.SessionUpdate(voice="default", voice_placement="flat")
        assert enc(update, F.LIVETRANSLATE_V38) == {"voice": "default"}

    def test_refuses_transcription_off(self) -> None:
        """Turning input transcription off is refused before sending, naming the family."""
        with pytest.raises(ds.ConfigError, match=r"LiveTranslate 3\.8.*transcription"):
            enc(ds.SessionUpdate(input_audio_transcription=None), F.LIVETRANSLATE_V38)

    def test_refuses_same_language_skip(self) -> None:
        """Same-language skipping is refused on 3.8."""
        update = ds.SessionUpdate(
            translation=ds.Translation(language="en", skip_same_language_text=True)
        )
        with pytest.raises(ds.ConfigError, match=r"LiveTranslate 3\.8.*same"):
            enc(update, F.LIVETRANSLATE_V38)
        enc(update, F.LIVETRANSLATE)  # accepted by 3 / 3.5


class TestQwenAudio:
    """Qwen-Audio: flat with its own extras (§4.6)."""

    def test_doc_example(self) -> None:
        """The documented session.update with smart turn and voiceprints."""
        update = ds.SessionUpdate(
            modalities=["text", "audio"],
            voice="longanqian",
            instructions="…",
            input_audio_format="pcm",
            output_audio_format="pcm",
            enable_speech_emotion=True,
            max_history_turns=20,
            turn_detection=ds.TurnDetection(
                type=ds.VAD_SMART_TURN, voiceprint_audio_urls=["https://example.com/me.wav"]
            ),
            tools=[ds.FunctionTool(name="get_weather", parameters={"type": "object"})],
        )
        assert enc(update, F.QWEN_AUDIO) == {
            "modalities": ["text", "audio"],
            "voice": "longanqian",
            "instructions": "…",
            "input_audio_format": "pcm",
            "output_audio_format": "pcm",
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "get_weather", "parameters": {"type": "object"}},
                }
            ],
            "enable_speech_emotion": True,
            "max_history_turns": 20,
            "turn_detection": {
                "type": "smart_turn",
                "voiceprint_audio_urls": ["https://example.com/me.wav"],
            },
        }

    def test_refuses_search_with_tools(self) -> None:
        """enable_search with function calling is refused."""
        update = ds.SessionUpdate(enable_search=True, tools=[ds.FunctionTool(name="f")])
        with pytest.raises(ds.ConfigError, match=r"Qwen-Audio.*enable_search"):
            enc(update, F.QWEN_AUDIO)

    @pytest.mark.parametrize(("field", "rate"), [("input", 24000), ("output", 16000)])
    def test_refuses_other_sample_rates(self, field: str, rate: int) -> None:
        """Qwen-Audio takes 16 kHz in and gives 24 kHz out only."""
        update = ds.SessionUpdate(**{f"{field}_sample_rate": rate})  # type: ignore[arg-type]
        with pytest.raises(ds.ConfigError, match="Qwen-Audio"):
            enc(update, F.QWEN_AUDIO)


class TestValidation:
    """The new fields are checked when the record is built."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_history_turns": 0},
            {"max_history_turns": 51},
            {"max_history_turns": 2.5},
            {"input_sample_rate": 44100},
            {"output_sample_rate": True},
            {"voice_clone_frequency": "sometimes"},
            {"voice_placement": "top"},
            {"enable_voice_clone": "yes"},
            {"video_representation_compact": True},
            {"enable_speech_emotion": 1},
            {"translation": "en"},
            {"voice": "Cherry", "voice_clone_frequency": "once"},
        ],
    )
    def test_bad_session_update(self, kwargs: dict[str, Any]) -> None:
        """Out-of-range or wrongly typed new fields are a ConfigError."""
        with pytest.raises(ds.ConfigError):
            ds.SessionUpdate(**kwargs)

    def test_clone_with_precreated_voice(self) -> None:
        """Frequency 'never' takes a pre-created voice id, sent with the frequency."""
        update = ds.SessionUpdate(voice="my-voice-id", voice_clone_frequency="never")
        assert enc(update, F.LIVETRANSLATE) == {
            "voice": "my-voice-id",
            "voice_clone_options": {"frequency": "never"},
        }

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"type": "server_vad", "voiceprint_audio_urls": ["https://x/a.wav"]},
            {"type": "smart_turn", "voiceprint_audio_urls": []},
            {"type": "smart_turn", "voiceprint_audio_urls": ["https://x/a.wav"] * 6},
            {"type": "smart_turn", "voiceprint_audio_urls": ["file:///etc/passwd"]},
            {"type": "smart_turn", "voiceprint_audio_urls": "https://x/a.wav"},
            {"idle_timeout_ms": -1},
        ],
    )
    def test_bad_turn_detection(self, kwargs: dict[str, Any]) -> None:
        """Voiceprints need smart_turn, 1-5 http(s) URLs; idle_timeout_ms is not negative."""
        with pytest.raises(ds.ConfigError):
            ds.TurnDetection(**kwargs)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"language": ""},
            {"language": "en", "glossary": {"": "x"}},
            {"language": "en", "glossary": ["a"]},
        ],
    )
    def test_bad_translation(self, kwargs: dict[str, Any]) -> None:
        """A translation needs a target language and a glossary of non-empty strings."""
        with pytest.raises(ds.ConfigError):
            ds.Translation(**kwargs)

    def test_transcription_language_and_corpus(self) -> None:
        """InputAudioTranscription sends language and corpus.text."""
        iat = ds.InputAudioTranscription(language="zh", corpus_text="DashScope, Qwen")
        assert iat.as_dict() == {"language": "zh", "corpus": {"text": "DashScope, Qwen"}}


@pytest.mark.both_modes
def test_omni_38_update_over_the_socket(server: LocalRealtimeServer) -> None:
    """On Omni 3.8 update_session sends the nested voice, and info.voice reads the nested echo."""
    client = ds.Client(server.api_key, base_url=server.url)
    with client.realtime.connect(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME) as session:
        info = session.update_session(ds.SessionUpdate(voice="Tina"), timeout=10)
        assert info.voice == "Tina"
    frame = server.wait_for_received("session.update", timeout=5)
    assert frame["session"] == {"audio": {"output": {"voice": "Tina"}}}


@pytest.mark.both_modes
def test_refusal_sends_nothing(server: LocalRealtimeServer) -> None:
    """A refused update raises before anything is sent."""
    client = ds.Client(server.api_key, base_url=server.url)
    session = client.realtime.connect(model=ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME)
    with session, pytest.raises(ds.ConfigError, match=r"LiveTranslate 3\.8"):
        session.update_session(ds.SessionUpdate(input_audio_transcription=None))
    assert not [f for f in server.received if f.get("type") == "session.update"]
