"""Transcription sessions end to end: the public API against the local server's Qwen-ASR-Realtime."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

from .audio_fakes import VirtualInput

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

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


def test_empty_commit_does_not_end_transcripts(client: ds.Client) -> None:
    """A commit with nothing buffered gets the server's commit_empty error, and transcripts() goes on."""
    errors: list[ds.ErrorEvent] = []
    with client.transcription.connect(turn_detection=None, language="en", timeout=10) as session:
        session.on(ds.ErrorEvent, errors.append)
        session.commit_audio()
        session.append_audio(spoken_pcm16("nothing was lost"))
        session.commit_audio()
        final = next(t for t in session.transcripts(timeout=10) if t.final)
        session.finish(timeout=10)
    assert final.text == "nothing was lost"
    assert [e.error.code for e in errors] == ["input_audio_buffer_commit_empty"]


def test_transcribe_timeout_counts_real_time_sending(client: ds.Client) -> None:
    """transcribe(realtime=True) raises DashScopeTimeout when the audio plays past the timeout."""
    pcm = spoken_pcm16("one two three") + _SILENCE * 3
    with pytest.raises(ds.DashScopeTimeout):
        client.transcription.transcribe(pcm, realtime=True, timeout=1.0)


def test_live_transcripts_interims_then_final(client: ds.Client) -> None:
    """Streaming speech yields interim transcripts of one item, then its final one."""
    pcm = spoken_pcm16("one two three four five six seven eight") + _SILENCE
    with client.transcription.connect(language="en", timeout=10) as session:
        sender = threading.Thread(target=lambda: ds.stream_pcm(session, pcm, realtime=False).wait())
        sender.start()
        got: list[ds.Utterance] = []
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


class TestMicrophone:
    def test_attached_microphone_is_transcribed(self, client: ds.Client) -> None:
        """attach(microphone=...) streams the microphone's blocks; its speech is transcribed."""
        inputs: list[VirtualInput] = []

        def stream(callback: Callable[..., None]) -> VirtualInput:
            inputs.append(VirtualInput(callback))
            return inputs[-1]

        pcm = spoken_pcm16("testing the microphone now") + _SILENCE
        with (
            ds.Microphone(stream=stream) as mic,
            client.transcription.connect(language="en", timeout=10) as session,
        ):
            session.attach(microphone=mic)
            for start in range(0, len(pcm), 3200):
                inputs[0].push(pcm[start : start + 3200])
            final = next(t for t in session.transcripts(timeout=10) if t.final)
            session.detach()
            session.finish(timeout=10)
        assert final.text == "testing the microphone now"

    def test_attach_refusals(self, client: ds.Client) -> None:
        """A microphone at another rate, a second one, or one on an Opus session is refused."""
        with client.transcription.connect(timeout=10) as session:
            with pytest.raises(ds.ConfigError, match="48000 Hz"):
                session.attach(microphone=ds.Microphone(rate=48000, stream=VirtualInput))
            with ds.Microphone(stream=VirtualInput) as mic:
                session.attach(microphone=mic)
                with pytest.raises(ds.UsageError, match="attached already"):
                    session.attach(microphone=mic)
                session.detach()
            session.finish(timeout=10)
        opus = ds.TranscriptionConfig(input_audio_format="opus")
        with (
            client.transcription.connect(opus, timeout=10) as session,
            pytest.raises(ds.ConfigError, match="Opus"),
        ):
            session.attach(microphone=ds.Microphone(stream=VirtualInput))


def test_failed_turn_raises_from_transcripts_and_transcribe(
    server: LocalRealtimeServer, client: ds.Client
) -> None:
    """A turn the server fails raises TranscriptionFailedError from transcripts() and
    from transcribe(), and reaches handlers as its event."""
    pcm = spoken_pcm16("this turn fails") + _SILENCE
    seen = threading.Event()
    with client.transcription.connect(timeout=10) as session:
        session.on(ds.ConversationItemInputAudioTranscriptionFailed, lambda e: seen.set())
        server.wait_for_connection().fail_next_transcription()
        ds.stream_pcm(session, pcm, realtime=False)
        with pytest.raises(ds.TranscriptionFailedError, match="simulated") as caught:
            list(session.transcripts(timeout=10))
        assert caught.value.item_id
        assert seen.wait(10)
        session.finish(timeout=10)

    def fail_next(frame: dict[str, Any]) -> list[dict[str, Any]]:
        server.wait_for_connection().fail_next_transcription()
        return []  # this first append, of the leading silence, is dropped

    # The server queues the failure as the first append arrives, before the speech: no
    # race, so no need to send seconds of silence at the pace of speech first.
    server.on_client_event("input_audio_buffer.append", fail_next, once=True)
    with pytest.raises(ds.TranscriptionFailedError):
        client.transcription.transcribe(_SILENCE + pcm)


def test_dropped_session_warns_once_and_closes(client: ds.Client) -> None:
    """A transcription session collected unclosed emits one ResourceWarning naming it, closes,
    and leaves no thread behind; a live transcripts() iterator does not keep it alive."""
    before = set(threading.enumerate())
    session = client.transcription.connect(timeout=10)
    reactor = client.reactor
    if reactor is not None:  # its threads (started with its first session) stay
        before |= {
            t for t in threading.enumerate() if t is reactor.thread or reactor.pool.runs_on(t)
        }
    core = session._core
    iterator = session.transcripts(timeout=10)
    with pytest.warns(ResourceWarning, match="unclosed <TranscriptionSession") as caught:
        del session
        gc.collect()
    assert len([w for w in caught if issubclass(w.category, ResourceWarning)]) == 1
    assert core.closed.wait(10)
    del iterator
    lib = [t for t in threading.enumerate() if t.name.startswith("dashscope_sync-")]
    lib = [t for t in lib if t not in before]
    for thread in lib:  # closed without waiting (a finalizer only signals): they end soon
        thread.join(10)
    assert [t for t in lib if t.is_alive()] == []
