"""The local server speaks every family, and every model of MODEL_FAMILIES.md §1 completes a turn."""

from __future__ import annotations

import json

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .test_families import FAMILY_OF_MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

F = ds.ModelFamily
TRANSLATING = (F.LIVETRANSLATE, F.LIVETRANSLATE_V38)
SPEECH = ds.load_wav(ds.sample_wav_path())
SILENCE = b"\x00\x00" * 16000


def _client(server: LocalRealtimeServer) -> ds.Client:
    return ds.Client(server.api_key, base_url=server.url)


def drain(session: ds.RealtimeSession, seconds: float) -> list[ds.ServerEvent]:
    """Every event that arrives within ``seconds`` of the last one."""
    events: list[ds.ServerEvent] = []
    while True:
        try:
            event = session.recv(timeout=seconds)
        except ds.DashScopeTimeout:
            return events
        if event is None:
            return events
        events.append(event)


@pytest.mark.parametrize(("model", "family"), list(FAMILY_OF_MODEL.items()))
def test_every_model_completes_a_turn(
    server: LocalRealtimeServer, model: str, family: ds.ModelFamily
) -> None:
    """Each documented model answers a turn (or translates one) through the public API."""
    with _client(server).realtime.connect(model=model) as session:
        assert session.family is family
        if family in TRANSLATING:
            # LiveTranslate's docs list no commit: its own VAD ends the turn.
            response = session.next_response()
            session.append_audio(SPEECH + SILENCE)
            result = response.wait(timeout=30)
            assert "simulated translation into en" in result.text
            assert not [f for f in server.received if f.get("type") == "response.create"]
        else:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            result = session.respond(text="Hello there", timeout=30)
            assert "simulated" in result.text
        assert result.audio
        assert result.status == "completed"


@pytest.mark.parametrize(
    ("model", "voice"),
    [
        (ds.MODEL_QWEN_OMNI_TURBO_REALTIME, "Chelsie"),
        (ds.MODEL_QWEN3_5_OMNI_PLUS_REALTIME, "Tina"),
        (ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME, "Tina"),
        (ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME, "Cherry"),
        (ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS, "longanqian"),
        (ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS, "longanqian_v3.1"),
    ],
)
def test_session_created_defaults(server: LocalRealtimeServer, model: str, voice: str) -> None:
    """session.created carries the family's default voice."""
    with _client(server).realtime.connect(model=model) as session:
        assert session.info.voice == voice


def test_livetranslate_38_created(server: LocalRealtimeServer) -> None:
    """LiveTranslate 3.8 echoes input and output modalities and speaker detection."""
    model = ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME
    with _client(server).realtime.connect(model=model) as session:
        info = session.info
        assert info.input_modalities == ["audio"]
        assert info.modalities == ["text", "audio"]
        assert info.turn_detection is not None
        assert info.turn_detection["type"] == "speaker_detection"
        assert info.translation == {"language": "en"}


def test_livetranslate_38_nested_update(server: LocalRealtimeServer) -> None:
    """The nested 3.8 update is accepted; output_modalities and the nested turn detection take effect."""
    model = ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME
    with _client(server).realtime.connect(model=model) as session:
        info = session.update_session(
            ds.SessionUpdate(
                modalities=["text"],
                turn_detection=None,
                translation=ds.Translation(language="fr"),
                voice=ds.VOICE_CLONE,
                enable_voice_clone=True,
                voice_clone_frequency="once",
            ),
            timeout=10,
        )
        assert info.modalities == ["text"]
        assert info.turn_detection is None
        assert info.voice == "default"
        assert info.enable_voice_clone is True
        response = session.next_response()
        session.append_audio(SPEECH)
        session.finish_session(timeout=30)  # LiveTranslate takes no commit
        result = response.wait(timeout=30)
        assert "into fr" in result.text
        assert not result.audio  # text only


def test_livetranslate_streams_text_and_stash(server: LocalRealtimeServer) -> None:
    """A LiveTranslate turn streams the source transcript and the translation as text/stash."""
    model = ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME
    with _client(server).realtime.connect(model=model) as session:
        response = session.next_response()
        session.append_audio(SPEECH + SILENCE)
        pieces = list(response.iter_text(timeout=30))
        result = response.wait(timeout=30)
        assert "".join(pieces) == result.text
        events = drain(session, 0.5)
        texts = [e for e in events if isinstance(e, ds.ResponseAudioTranscriptText)]
        assert texts and texts[-1].text + texts[-1].stash == result.text
        sources = [
            e for e in events if isinstance(e, ds.ConversationItemInputAudioTranscriptionText)
        ]
        assert sources and sources[0].text + sources[0].stash


def test_livetranslate_finish_flushes(server: LocalRealtimeServer) -> None:
    """session.finish translates the audio still buffered, then answers session.finished."""
    model = ds.MODEL_QWEN3_LIVETRANSLATE_FLASH_REALTIME
    with _client(server).realtime.connect(model=model) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.append_audio(SPEECH)
        finished = session.finish_session(timeout=30)
        assert isinstance(finished, ds.SessionFinished)
        types = [e.type for e in drain(session, 1)]
        assert "response.done" in types


@pytest.mark.parametrize(
    "model", [ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME, ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH]
)
def test_finish_rejected(server: LocalRealtimeServer, model: str) -> None:
    """Omni 3.5 and Qwen-Audio answer a raw session.finish with an invalid event type error."""
    with _client(server).realtime.connect(model=model) as session:
        session.send_raw({"type": "session.finish"})
        error = session.wait_for(ds.ErrorEvent, timeout=5)
        assert error.error.code == "invalid_event_type"


def test_omni_38_finish_unanswered(server: LocalRealtimeServer) -> None:
    """Omni 3.8 accepts session.finish without an answer."""
    with _client(server).realtime.connect(model=ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME) as session:
        session.send_raw({"type": "session.finish"})
        server.wait_for_received("session.finish", timeout=5)
        session.update_session(ds.SessionUpdate(instructions="x"), timeout=10)
        assert not [e for e in drain(session, 0.2) if e.type in ("error", "session.finished")]


def test_qwen_audio_voiceprints(server: LocalRealtimeServer) -> None:
    """Voiceprint URLs with smart_turn give in_progress before session.updated, then completed."""
    with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_1_REALTIME_PLUS) as session:
        detection = ds.TurnDetection(
            type=ds.VAD_SMART_TURN, voiceprint_audio_urls=["https://example.com/me.wav"]
        )
        session.update_session(ds.SessionUpdate(turn_detection=detection), timeout=10)
        types = [e.type for e in drain(session, 0.5)]
        assert types.index("voiceprint_audio_list.in_progress") < types.index("session.updated")
        assert "voiceprint_audio_list.completed" in types


def test_qwen_audio_voiceprint_failure(server: LocalRealtimeServer) -> None:
    """A voiceprint the server cannot fetch gives .failed with a reason; the session goes on."""
    with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS) as session:
        detection = ds.TurnDetection(
            type=ds.VAD_SMART_TURN, voiceprint_audio_urls=["https://example.com/fail.wav"]
        )
        session.update_session(ds.SessionUpdate(turn_detection=detection), timeout=10)
        failed = session.wait_for(ds.VoiceprintAudioListFailed, timeout=5)
        assert "simulated" in failed.reason


def test_qwen_audio_second_create() -> None:
    """Qwen-Audio refuses a second response.create while one runs, with its own message."""
    # Slow deltas keep the first response running while the second request arrives.
    with (
        LocalRealtimeServer(delta_delay=0.05) as server,
        _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS) as session,
    ):
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.append_text("a long question")
        first = session.create_response()
        second = session.create_response()
        with pytest.raises(ds.ActiveResponseError, match="another response is in progress"):
            second.wait(timeout=10)
        assert first.cancel()  # no need to hear the slow first answer out


def test_qwen_audio_server_error_closes(server: LocalRealtimeServer) -> None:
    """The server itself ends a Qwen-Audio connection after a server_error (code 1011)."""
    ws = websocket.create_connection(
        server.model_url(ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH),
        header=[f"Authorization: Bearer {server.api_key}"],
        timeout=10,
    )
    try:
        assert json.loads(ws.recv())["type"] == "session.created"
        server.send({"type": "error", "error": {"type": "server_error", "message": "boom"}})
        assert json.loads(ws.recv())["type"] == "error"
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1011
    finally:
        ws.close()
        ws.shutdown()  # close() skips the socket once the server has closed


def test_qwen_audio_smart_turn_ambient(server: LocalRealtimeServer) -> None:
    """Under smart turn a short murmur comes back as ambient transcripts, with no response."""
    with _client(server).realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_FLASH) as session:
        detection = ds.TurnDetection(type=ds.VAD_SMART_TURN, silence_duration_ms=200)
        session.update_session(ds.SessionUpdate(turn_detection=detection), timeout=10)
        session.append_audio(speech_like_pcm16(0.3))
        session.append_audio(b"\x00\x00" * 16000)  # a second of silence ends it
        done = session.wait_for(ds.ConversationItemAmbientAudioTranscriptionCompleted, timeout=10)
        assert "not a turn" in done.value
        events = drain(session, 0.5)
        assert not [
            e for e in events if isinstance(e, (ds.ResponseCreated, ds.InputAudioBufferCommitted))
        ]
