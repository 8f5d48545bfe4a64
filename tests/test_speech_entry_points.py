"""Config errors that send a model to the service it belongs to, and keep their type (review 15, finding 7)."""

from __future__ import annotations

import pytest

import dashscope_sync as ds


def test_speech_config_names_transcription_connect_for_an_asr_model() -> None:
    """An ASR model given to SpeechConfig is refused naming client.transcription.connect."""
    with pytest.raises(ds.ConfigError, match=r"client\.transcription\.connect") as caught:
        ds.SpeechConfig(model=ds.MODEL_QWEN3_ASR_FLASH_REALTIME)
    assert "client.realtime" not in str(caught.value)


def test_speech_config_names_realtime_connect_for_a_conversation_model() -> None:
    """A conversation model given to SpeechConfig is refused naming client.realtime.connect."""
    with pytest.raises(ds.ConfigError, match=r"client\.realtime\.connect"):
        ds.SpeechConfig(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)


def test_transcription_config_names_speech_connect_for_a_tts_model() -> None:
    """A TTS model given to TranscriptionConfig is refused naming client.speech.connect."""
    with pytest.raises(ds.ConfigError, match=r"client\.speech\.connect") as caught:
        ds.TranscriptionConfig(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME)
    assert "client.realtime" not in str(caught.value)


def test_speech_connect_keeps_a_fields_config_type_error() -> None:
    """client.speech.connect(volume=50.5) raises ConfigTypeError, as SpeechConfig does, before connecting."""
    client = ds.Client("k", base_url="ws://127.0.0.1:9/")
    with pytest.raises(ds.ConfigTypeError, match="volume must be an integer"):
        client.speech.connect(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, volume=50.5, timeout=1)


def test_speech_connect_refuses_an_unknown_keyword_naming_it() -> None:
    """An unknown keyword to client.speech.connect is a ConfigError naming it, before connecting."""
    client = ds.Client("k", base_url="ws://127.0.0.1:9/")
    with pytest.raises(ds.ConfigError, match="bad SpeechConfig option: loudness"):
        client.speech.connect(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, loudness=3, timeout=1)
