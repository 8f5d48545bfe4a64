"""Type-level checks of the text-to-speech API, run by mypy (tests/test_quality.py), never executed."""

from __future__ import annotations

from collections.abc import Iterator

from typing_extensions import assert_type  # typing has it from 3.11 only

import dashscope_sync as ds


def check(client: ds.Client, pieces: Iterator[str]) -> None:
    config = ds.SpeechConfig(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Cherry")
    assert_type(client.speech.connect(config), ds.SpeechSession)
    session = client.speech.connect(ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Ethan")
    speech = session.speak("Hello")
    assert_type(speech, ds.Speech)
    assert_type(session.speak(pieces), ds.Speech)
    assert_type(speech.wait(10), ds.SpeechResult)
    assert_type(speech.wait(10).audio, bytes)
    assert_type(speech.wait(10).first_audio_delay, float | None)
    for chunk in speech.iter_audio(timeout=5):
        assert_type(chunk, bytes)
    assert_type(speech.cancel(), bool)

    def on_committed(event: ds.InputTextBufferCommitted) -> None:
        assert_type(event.item_id, str)

    assert_type(session.on(ds.InputTextBufferCommitted, on_committed), ds.HandlerHandle)

    @session.on(ds.ResponseAudioDelta)
    def on_audio(event: ds.ResponseAudioDelta) -> None:
        assert_type(event.delta, bytes)

    assert_type(session.wait_for(ds.InputTextBufferCleared), ds.InputTextBufferCleared)
    assert_type(session.append_text("more"), str)
    assert_type(session.finish(timeout=5), ds.SessionFinished | None)
    assert_type(client.speech.synthesize("One text."), ds.SpeechResult)
