"""Transcription sessions end to end: the public API against the local server's Qwen-ASR-Realtime."""

from __future__ import annotations

import threading

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

_SILENCE = b"\x00\x00" * 16000  # 1 s at 16 kHz


def test_demo_clip_transcribed_in_one_call(client: ds.Client) -> None:
    """transcribe() of the demo clip returns its known words, in English."""
    result = client.transcription.transcribe(
        ds.sample_wav_path(), turn_detection=ds.TurnDetection(silence_duration_ms=400)
    )
    assert result.text == "Hello! What is the weather like in Hangzhou today?"
    assert result.language == "en"
    assert [t.text for t in result.transcripts] == [
        "Hello!",
        "What is the weather like in Hangzhou today?",
    ]
    assert all(t.final and t.speech_start_ms is not None for t in result.transcripts)


def test_manual_mode_transcribe(client: ds.Client) -> None:
    """In manual mode transcribe() commits the whole buffer: one final transcript."""
    pcm = spoken_pcm16("the quick brown fox jumps")
    result = client.transcription.transcribe(pcm, turn_detection=None, language="en")
    assert result.text == "the quick brown fox jumps"
    assert len(result.transcripts) == 1


def test_live_transcripts_interims_then_final(client: ds.Client) -> None:
    """Streaming speech yields interim transcripts of one item, then its final one."""
    pcm = spoken_pcm16("one two three four five six seven eight") + _SILENCE
    with client.transcription.connect(language="en", timeout=10) as session:
        sender = threading.Thread(target=lambda: ds.stream_pcm(session, pcm, realtime=False).wait())
        sender.start()
        got: list[ds.Transcript] = []
        for transcript in session.transcripts(timeout=10):
            got.append(transcript)
            if transcript.final:
                break
        sender.join(10)
        session.finish(timeout=10)
    interims, final = got[:-1], got[-1]
    assert interims and all(not t.final and t.item_id == final.item_id for t in interims)
    assert final.text == "one two three four five six seven eight"
    assert final.speech_end_ms is not None


def test_commit_refused_by_the_client_under_vad(client: ds.Client) -> None:
    """Under VAD commit_audio() is refused by the client, so the server never sees it."""
    with client.transcription.connect(timeout=10) as session:
        with pytest.raises(ds.UsageError):
            session.commit_audio()
        session.finish(timeout=10)
        assert session.close_code == 1000


def test_finish_without_speech(client: ds.Client) -> None:
    """finish() with no speech returns at once after session.finished; transcripts() is empty."""
    with client.transcription.connect(timeout=10) as session:
        session.append_audio(_SILENCE)
        session.finish(timeout=10)
        assert list(session.transcripts(timeout=10)) == []


def test_every_documented_model_connects(server: LocalRealtimeServer) -> None:
    """Every documented model name opens a session on the local server (it knows the same names)."""
    client = ds.Client(server.api_key, base_url=server.url)
    for model in ds.ASR_MODELS:
        with client.transcription.connect(model, timeout=10) as session:
            session.finish(timeout=10)
            assert session.close_code == 1000
