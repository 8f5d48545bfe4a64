"""Each family's wire as its docs write it (MODEL_FAMILIES.md): what the client sends and refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._wire.codec import decode
from dashscope_sync._wire.dialects import TurnPlan, check_client_event, encode_session, plan_turn
from dashscope_sync._wire.families import family_of
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .test_examples import run_example

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes


class TestSpeechStoppedReason:
    """Qwen-Audio's ``speech_stopped`` says why the speech ended (MODEL_FAMILIES.md §7)."""

    def test_turn_invalid_is_typed(self) -> None:
        """A ``reason`` of ``turn_invalid`` is read into the event's typed field."""
        frame = {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": 900,
            "item_id": "item_9",
            "reason": "turn_invalid",
        }
        event = decode(json.dumps(frame))
        assert isinstance(event, ds.InputAudioBufferSpeechStopped)
        assert event.reason == "turn_invalid"

    def test_absent_reason_is_none(self) -> None:
        """The Omni frame, without a reason, gives None."""
        event = decode('{"type":"input_audio_buffer.speech_stopped","audio_end_ms":5}')
        assert isinstance(event, ds.InputAudioBufferSpeechStopped)
        assert event.reason is None


class TestModelInBaseUrl:
    """A ``model`` already in ``base_url``'s query must be the session's model."""

    def test_other_model_refused(self, server: LocalRealtimeServer) -> None:
        """A base_url naming another model is a ConfigError naming both, before connecting."""
        url = f"{server.url}?model={ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME}"
        client = ds.Client(server.api_key, base_url=url)
        with pytest.raises(ds.ConfigError, match=r"qwen3\.8-omni.*qwen3-omni-flash-realtime"):
            client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, timeout=5)
        assert server.received == []

    def test_same_model_connects(self, server: LocalRealtimeServer) -> None:
        """A base_url naming the session's own model connects as usual."""
        url = f"{server.url}?model={ds.MODEL_QWEN3_OMNI_FLASH_REALTIME}"
        client = ds.Client(server.api_key, base_url=url)
        with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME, timeout=5) as s:
            assert s.model == ds.MODEL_QWEN3_OMNI_FLASH_REALTIME


class TestCreateResponseExtra:
    """``create_response(extra=...)`` carries any per-response field and keeps its handle."""

    def test_extra_fields_sent_and_handle_returned(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """Qwen-Audio's documented per-response field, given as extra, is sent; the handle waits."""
        with client.realtime.connect(model=ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS) as session:
            session.append_text("hi")
            # Qwen-Audio's docs: response.modalities overrides the session's for one turn.
            handle = session.create_response(extra={"modalities": ["text"]})
            assert isinstance(handle, ds.Response)
            result = handle.wait(timeout=10)
            assert result.text
        frame = server.wait_for_received("response.create", timeout=5)
        assert frame["response"] == {"modalities": ["text"]}

    def test_bad_extra_refused(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """An extra that is not a dict of string keys is a ConfigError, nothing sent."""
        with pytest.raises(ds.ConfigError, match="extra"):
            session.create_response(extra=["temperature"])  # type: ignore[arg-type]
        assert not [f for f in server.received if f.get("type") == "response.create"]


# Each documented range at its edges (PROTOCOL.md §2.1, §6): (field, value).
RANGE_EDGES: list[tuple[str, Any]] = [
    ("seed", -1),
    ("seed", 0),
    ("seed", 2**31 - 1),
    ("seed", 2**31),
    ("temperature", 0),
    ("temperature", 1.99),
    ("temperature", 2),
    ("top_p", 0),
    ("top_p", 1),
    ("top_p", 1.01),
    ("presence_penalty", -2),
    ("presence_penalty", 2.01),
    ("repetition_penalty", 0),
    ("repetition_penalty", 0.01),
    ("top_k", -1),
    ("top_k", 2**31 - 1),
    ("top_k", 2**31),
    ("max_tokens", 0),
    ("max_tokens", 2**31 - 1),
    ("max_tokens", 2**31),
]
# The same for turn detection's documented ranges.
VAD_EDGES: list[tuple[str, Any]] = [
    ("threshold", -1.0),
    ("threshold", 1.0),
    ("threshold", 1.01),
    ("silence_duration_ms", 199),
    ("silence_duration_ms", 200),
    ("silence_duration_ms", 6000),
    ("silence_duration_ms", 6001),
]


def _client_takes(record: Callable[..., object], **fields: Any) -> bool:
    try:
        record(**fields)
    except ds.ConfigError:
        return False
    return True


def _server_takes(session: ds.RealtimeSession, update: dict[str, Any]) -> bool:
    try:
        session.update_session(update, timeout=10)  # a dict is sent as is, unchecked
    except ds.APIError:
        return False
    return True


class TestRangesAgree:
    """The client refuses exactly what the local server refuses, at each documented edge."""

    def test_seed_is_the_documented_range(self) -> None:
        """A seed of -1 (the echoed default) is refused: the docs' range starts at 0."""
        with pytest.raises(ds.ConfigError, match=r"seed must be an integer in \[0, "):
            ds.SessionUpdate(seed=-1)

    def test_session_fields(self, session: ds.RealtimeSession) -> None:
        """For every session-level edge the client and the server give the same verdict."""
        verdicts = {
            (field, value): (
                _client_takes(ds.SessionUpdate, **{field: value}),
                _server_takes(session, {field: value}),
            )
            for field, value in RANGE_EDGES
        }
        assert {key: v for key, v in verdicts.items() if v[0] != v[1]} == {}

    def test_turn_detection_fields(self, session: ds.RealtimeSession) -> None:
        """For every turn-detection edge the client and the server give the same verdict."""
        verdicts = {
            (field, value): (
                _client_takes(ds.TurnDetection, **{field: value}),
                _server_takes(session, {"turn_detection": {"type": "server_vad", field: value}}),
            )
            for field, value in VAD_EDGES
        }
        assert {key: v for key, v in verdicts.items() if v[0] != v[1]} == {}


F = ds.ModelFamily
TURBO = ds.MODEL_QWEN_OMNI_TURBO_REALTIME_LATEST
FLASH = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
OMNI35 = ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME
OMNI38 = ds.MODEL_QWEN3_8_OMNI_FLASH_REALTIME
LT35 = ds.MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME
LT38 = ds.MODEL_QWEN3_8_LIVETRANSLATE_FLASH_REALTIME
QA = ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS
#: One model of each family and variant, as the session encodes for it.
MODELS = [TURBO, FLASH, OMNI35, OMNI38, LT35, LT38, QA]


def enc(update: ds.SessionUpdate, model: str) -> dict[str, Any]:
    """The session object a session on ``model`` sends for ``update``."""
    return encode_session(update, family_of(model), model)


class TestLiveTranslate38TurnDetection:
    """LiveTranslate 3.8 detects turns by speaker_detection; server_vad is never sent there."""

    def test_default_type_is_speaker_detection(self) -> None:
        """A TurnDetection without a type is sent as speaker_detection, nested under audio.input."""
        session = enc(ds.SessionUpdate(turn_detection=ds.TurnDetection(threshold=0.5)), LT38)
        assert session == {
            "audio": {"input": {"turn_detection": {"type": "speaker_detection", "threshold": 0.5}}}
        }

    def test_server_vad_refused(self) -> None:
        """An explicit server_vad is a ConfigError naming the type the family takes."""
        update = ds.SessionUpdate(turn_detection=ds.TurnDetection(type=ds.VAD_SERVER))
        with pytest.raises(ds.ConfigError, match=r"'server_vad'.*'speaker_detection'"):
            enc(update, LT38)

    def test_manual_mode_allowed(self) -> None:
        """turn_detection=None stays allowed, as the SDK's own 3.8 example sends it."""
        session = enc(ds.SessionUpdate(turn_detection=None), LT38)
        assert session == {"audio": {"input": {"turn_detection": None}}}

    def test_other_families_default_to_server_vad(self) -> None:
        """Elsewhere a TurnDetection without a type is server_vad, as before."""
        for model in (TURBO, OMNI35, OMNI38, LT35, QA):
            session = enc(ds.SessionUpdate(turn_detection=ds.TurnDetection()), model)
            assert session["turn_detection"] == {"type": "server_vad"}, model
        assert ds.TurnDetection().as_dict() == {"type": "server_vad"}

    @pytest.mark.parametrize(
        ("kind", "model"),
        [
            (ds.VAD_SEMANTIC, TURBO),
            (ds.VAD_SMART_TURN, OMNI35),
            (ds.VAD_SPEAKER_DETECTION, QA),
            (ds.VAD_SPEAKER_DETECTION, LT35),
        ],
    )
    def test_foreign_type_refused(self, kind: str, model: str) -> None:
        """A turn-detection type the model's docs do not list is refused before sending."""
        with pytest.raises(ds.ConfigError, match=repr(kind)):
            enc(ds.SessionUpdate(turn_detection=ds.TurnDetection(type=kind)), model)

    def test_over_the_socket(self, server: LocalRealtimeServer, client: ds.Client) -> None:
        """update_session on a LiveTranslate 3.8 session sends speaker_detection, never server_vad."""
        with client.realtime.connect(model=LT38) as session:
            session.update_session(ds.SessionUpdate(turn_detection=ds.TurnDetection()), timeout=10)
        frame = server.wait_for_received("session.update", timeout=5)
        assert "server_vad" not in json.dumps(frame)
        assert frame["session"]["audio"]["input"]["turn_detection"]["type"] == "speaker_detection"


def _formats(session: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The flat format keys and the nested audio.*.format paths of a session object."""
    flat = [key for key in ("input_audio_format", "output_audio_format") if key in session]
    audio = session.get("audio", {})
    nested = [d for d in ("input", "output") if "format" in audio.get(d, {})]
    return flat, nested


class TestOneShape:
    """One session.update never mixes flat and nested audio fields."""

    @pytest.mark.parametrize("model", MODELS)
    @pytest.mark.parametrize(
        "fields",
        [
            {"input_audio_format": "pcm", "output_audio_format": "pcm"},
            {"input_audio_format": "pcm", "input_sample_rate": 16000},
            {"output_audio_format": "pcm", "input_sample_rate": 16000},
            {"input_audio_format": "pcm", "output_sample_rate": 24000},
            {
                "input_audio_format": "pcm",
                "output_audio_format": "pcm",
                "input_sample_rate": 16000,
                "output_sample_rate": 24000,
            },
        ],
    )
    def test_never_mixed(self, model: str, fields: dict[str, Any]) -> None:
        """Whatever formats and documented rates are given, the update is flat or nested, not both."""
        flat, nested = _formats(enc(ds.SessionUpdate(**fields), model))
        assert not (flat and nested), (flat, nested)

    def test_omni_35_nests_both_formats(self) -> None:
        """On Omni 3.5 a sample rate moves both formats under audio, the flat one included."""
        update = ds.SessionUpdate(
            input_audio_format="pcm", output_audio_format="pcm", input_sample_rate=16000
        )
        assert enc(update, OMNI35) == {
            "audio": {
                "input": {"format": {"type": "pcm", "sample_rate": 16000}},
                "output": {"format": {"type": "pcm"}},
            }
        }

    @pytest.mark.parametrize("model", [TURBO, FLASH, QA])
    def test_flat_only_models_get_the_flat_form(self, model: str) -> None:
        """On turbo, qwen3-flash and Qwen-Audio the fixed rates are the flat formats' own: not sent."""
        update = ds.SessionUpdate(
            input_audio_format="pcm16",
            output_audio_format="pcm24",
            input_sample_rate=16000,
            output_sample_rate=24000,
        )
        assert enc(update, model) == {"input_audio_format": "pcm16", "output_audio_format": "pcm24"}

    @pytest.mark.parametrize("model", [TURBO, FLASH])
    def test_flat_only_other_rate_refused(self, model: str) -> None:
        """Another rate on a flat-only model is a ConfigError saying what the model takes."""
        with pytest.raises(ds.ConfigError, match=r"flat input_audio_format only.*16 kHz"):
            enc(ds.SessionUpdate(input_sample_rate=48000), model)

    @pytest.mark.parametrize(
        "extra", [{"audio": {"output": {"voice": "Cherry"}}}, {"output_modalities": ["text"]}]
    )
    def test_flat_only_refuses_nested_extra(self, extra: dict[str, Any]) -> None:
        """Nested or GA-shaped fields in extra, which turbo would silently drop, are refused."""
        with pytest.raises(ds.ConfigError, match="silently drop"):
            enc(ds.SessionUpdate(extra=extra), TURBO)
        enc(ds.SessionUpdate(extra=extra), OMNI38)  # the 3.8 family takes them

    def test_extra_mixing_refused(self) -> None:
        """A nested format in extra beside a flat format is refused, naming both."""
        update = ds.SessionUpdate(
            input_audio_format="pcm",
            extra={"audio": {"output": {"format": {"type": "pcm", "sample_rate": 24000}}}},
        )
        with pytest.raises(ds.ConfigError, match=r"input_audio_format.*audio\.output\.format"):
            enc(update, OMNI35)

    def test_livetranslate_output_rate(self) -> None:
        """LiveTranslate's input rate is the flat sample_rate; its output is 24 kHz only."""
        update = ds.SessionUpdate(
            output_audio_format="pcm", input_sample_rate=16000, output_sample_rate=24000
        )
        assert enc(update, LT35) == {"output_audio_format": "pcm", "sample_rate": 16000}
        with pytest.raises(ds.ConfigError, match="24 kHz"):
            enc(ds.SessionUpdate(output_sample_rate=16000), LT35)


class TestTranscriptionPerFamily:
    """Turning input transcription on sends what each family's docs and SDK send."""

    @pytest.mark.parametrize(
        ("model", "wire"),
        [
            (TURBO, {"model": "gummy-realtime-v1"}),
            (FLASH, {"model": "gummy-realtime-v1"}),
            (OMNI35, {"model": "qwen3-asr-flash-realtime"}),
            (OMNI38, {"model": "qwen3-asr-flash-realtime"}),
            (LT35, {"model": "qwen3-asr-flash-realtime"}),
            (QA, {}),
        ],
    )
    def test_on(self, model: str, wire: dict[str, Any]) -> None:
        """InputAudioTranscription() names the family's transcription model where the docs name one."""
        update = ds.SessionUpdate(input_audio_transcription=ds.InputAudioTranscription())
        assert enc(update, model) == {"input_audio_transcription": wire}

    def test_language_kept(self) -> None:
        """Other settings ride along after the model (LiveTranslate's source language)."""
        update = ds.SessionUpdate(
            input_audio_transcription=ds.InputAudioTranscription(language="zh")
        )
        assert enc(update, LT35) == {
            "input_audio_transcription": {"model": "qwen3-asr-flash-realtime", "language": "zh"}
        }

    def test_livetranslate_38_sends_nothing(self) -> None:
        """On LiveTranslate 3.8, where it is always on, turning it on sends nothing."""
        update = ds.SessionUpdate(
            input_audio_transcription=ds.InputAudioTranscription(), instructions="x"
        )
        assert enc(update, LT38) == {"instructions": "x"}
        with pytest.raises(ds.ConfigError, match="always on"):
            enc(
                ds.SessionUpdate(
                    input_audio_transcription=ds.InputAudioTranscription(language="zh")
                ),
                LT38,
            )

    @pytest.mark.parametrize(
        ("model", "other"),
        [(TURBO, "qwen3-asr-flash-realtime"), (LT35, "gummy-realtime-v1"), (OMNI38, "whisper-1")],
    )
    def test_other_model_refused(self, model: str, other: str) -> None:
        """A transcription model the family's docs do not name is refused, naming the one it takes."""
        update = ds.SessionUpdate(input_audio_transcription=ds.InputAudioTranscription(model=other))
        with pytest.raises(ds.ConfigError, match=r"takes .* only"):
            enc(update, model)


class TestFamilyForeignFields:
    """Typed fields of another family are refused before anything is sent."""

    @pytest.mark.parametrize(
        "fields",
        [
            {"translation": ds.Translation(language="en")},
            {"enable_voice_clone": True},
            {"voice_clone_frequency": "once"},
        ],
    )
    @pytest.mark.parametrize("model", [TURBO, OMNI35, OMNI38, QA])
    def test_livetranslate_fields(self, model: str, fields: dict[str, Any]) -> None:
        """Translation and voice cloning are LiveTranslate's: refused elsewhere, naming one."""
        with pytest.raises(ds.ConfigError, match="LiveTranslate"):
            enc(ds.SessionUpdate(**fields), model)

    @pytest.mark.parametrize("fields", [{"max_history_turns": 5}, {"enable_speech_emotion": True}])
    @pytest.mark.parametrize("model", [FLASH, OMNI38, LT35, LT38])
    def test_qwen_audio_fields(self, model: str, fields: dict[str, Any]) -> None:
        """Qwen-Audio's own settings are refused on the other families."""
        with pytest.raises(ds.ConfigError, match="Qwen-Audio"):
            enc(ds.SessionUpdate(**fields), model)

    def test_translation_on_omni_sends_nothing(
        self, server: LocalRealtimeServer, client: ds.Client
    ) -> None:
        """A translation on an Omni session fails at once instead of waiting for a translation."""
        session = client.realtime.connect(model=FLASH)
        with session, pytest.raises(ds.ConfigError, match="LiveTranslate"):
            session.update_session(ds.SessionUpdate(translation=ds.Translation(language="en")))
        assert not [f for f in server.received if f.get("type") == "session.update"]


def _sent(server: LocalRealtimeServer, wire_type: str) -> list[dict[str, Any]]:
    """The frames of one type the server received."""
    return [f for f in server.received if f.get("type") == wire_type]


class TestUndocumentedClientEvents:
    """Client events a family's docs do not list are refused, naming send_raw as the way out."""

    @pytest.mark.parametrize("model", [LT35, LT38])
    def test_livetranslate_commit(self, server: LocalRealtimeServer, model: str) -> None:
        """commit_audio() on LiveTranslate is a UsageError and sends nothing; send_raw still can."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=model) as session:
            session.append_audio(speech_like_pcm16(0.2))
            with pytest.raises(ds.UsageError, match=r"input_audio_buffer\.commit.*send_raw"):
                session.commit_audio()
            assert _sent(server, "input_audio_buffer.commit") == []
            session.send_raw({"type": "input_audio_buffer.commit"})
            server.wait_for_received("input_audio_buffer.commit", timeout=5)

    @pytest.mark.parametrize(
        ("call", "wire_type"),
        [
            (lambda s: s.clear_audio(), "input_audio_buffer.clear"),
            (lambda s: s.append_text("hi"), "conversation.item.create"),
            (lambda s: s.cancel_response(), "response.cancel"),
            (lambda s: s.create_item({"type": "message"}), "conversation.item.create"),
            (lambda s: s.delete_item("item_1"), "conversation.item.delete"),
        ],
    )
    def test_livetranslate_others(
        self,
        server: LocalRealtimeServer,
        call: Callable[[ds.RealtimeSession], object],
        wire_type: str,
    ) -> None:
        """Every other undocumented event on LiveTranslate is refused before sending."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=LT38) as session:
            with pytest.raises(ds.UsageError, match="send_raw"):
                call(session)
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        assert _sent(server, wire_type) == []

    def test_qwen_audio_image(self, server: LocalRealtimeServer) -> None:
        """Qwen-Audio's docs list no image append: append_image() is refused there."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=QA) as session:
            session.append_audio(speech_like_pcm16(0.2))
            with pytest.raises(ds.UsageError, match=r"input_image_buffer\.append.*send_raw"):
                session.append_image(b"\xff\xd8\xff\xe0" + bytes(100))
        assert _sent(server, "input_image_buffer.append") == []

    def test_omni_unrestricted(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """The Omni families keep every event (their docs leave the list open)."""
        session.append_audio(speech_like_pcm16(0.2))
        session.commit_audio()
        server.wait_for_received("input_audio_buffer.commit", timeout=5)

    def test_interrupt_on_livetranslate_sends_no_cancel(self, server: LocalRealtimeServer) -> None:
        """interrupt() during a LiveTranslate reply drops it locally and sends no response.cancel."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=LT35) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            interruptions: list[ds.Interruption] = []
            # From the handler thread, while the translation is running.
            session.on(ds.ResponseCreated, lambda _: interruptions.append(session.interrupt()))
            session.append_audio(SPEECH)
            session.finish_session(timeout=30)
        assert interruptions and interruptions[0].response_id
        assert not interruptions[0].cancelled
        assert _sent(server, "response.cancel") == []


SPEECH = ds.load_wav(ds.sample_wav_path())
#: One second of digital silence at 16 kHz PCM16.
SECOND_OF_SILENCE = bytes(32000)


class TestRespondUnderServerVad:
    """respond() under server VAD lets the server's VAD commit the turn: one turn, one reply."""

    def _replies_after(self, session: ds.RealtimeSession) -> int:
        """How many responses the server started, once it has handled all sent so far."""
        # An answered update: everything sent before it has been handled.
        session.update_session(ds.SessionUpdate(instructions="sync"), timeout=10)
        created = 0
        while True:
            try:
                event = session.recv(timeout=0)  # only what is buffered already
            except ds.DashScopeTimeout:
                return created
            created += isinstance(event, ds.ResponseCreated)

    def test_spoken_turn_with_trailing_silence(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A spoken turn ending in silence gives no commit of ours and exactly one reply."""
        assert session.info.turn_detection is not None  # the local server's default: VAD
        result = session.respond(SPEECH + SECOND_OF_SILENCE, timeout=30)
        assert result.text
        assert self._replies_after(session) == 1
        assert _sent(server, "input_audio_buffer.commit") == []
        assert _sent(server, "response.create") == []

    def test_clip_ending_on_speech(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """A clip that ends on speech still ends its turn (silence follows it), without a commit."""
        result = session.respond(speech_like_pcm16(1.0), timeout=30)
        assert result.text
        assert self._replies_after(session) == 1
        assert _sent(server, "input_audio_buffer.commit") == []

    def test_manual_mode_still_commits(
        self, server: LocalRealtimeServer, session: ds.RealtimeSession
    ) -> None:
        """In manual mode respond() commits and asks for the response, as before."""
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        session.respond(SPEECH, timeout=30)
        assert len(_sent(server, "input_audio_buffer.commit")) == 1
        assert len(_sent(server, "response.create")) == 1

    def test_livetranslate_38_follows_speaker_detection(self, server: LocalRealtimeServer) -> None:
        """On LiveTranslate 3.8 (speaker_detection by default) respond() translates with no commit."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=LT38) as session:
            result = session.respond(SPEECH, timeout=30)
            assert result.text
        assert _sent(server, "input_audio_buffer.commit") == []

    def test_livetranslate_manual_mode_says_finish(self, server: LocalRealtimeServer) -> None:
        """Without turn detection LiveTranslate's speech ends only at finish: respond() says so."""
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=LT35) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            with pytest.raises(ds.UsageError, match=r"finish_session\(\)"):
                session.respond(SPEECH, timeout=30)
        assert _sent(server, "input_audio_buffer.append") == []


def test_live_translation_example_on_omni_fails_at_once(tmp_path: Path) -> None:
    """live_translation.py with an Omni model ends with the ConfigError, not a wait for nothing."""
    proc = run_example("live_translation.py", "--model", FLASH, "--timeout", "5", cwd=tmp_path)
    assert proc.returncode == 2  # the CLI's exit code for a ConfigError
    assert "translation on qwen3-omni-flash-realtime" in proc.stderr
    assert "LiveTranslate" in proc.stderr and "timed out" not in proc.stderr


class TestPlanTurn:
    """The respond() decision, socket-free: who ends the turn and who creates the reply."""

    def test_server_vad_commits_by_itself(self) -> None:
        """Under server VAD with automatic responses: no commit, follow the server, pad past its silence."""
        plan = plan_turn(
            F.OMNI, {"type": "server_vad", "silence_duration_ms": 500}, audio=True, image=False
        )
        assert plan == TurnPlan(commit=False, server_creates=True, trailing_silence_ms=700)

    def test_default_silence(self) -> None:
        """Without a silence_duration_ms (smart_turn) the service default of 800 ms is padded past."""
        plan = plan_turn(F.QWEN_AUDIO, {"type": "smart_turn"}, audio=True, image=False)
        assert plan.trailing_silence_ms == 1000 and not plan.commit

    def test_manual_and_no_auto_response_commit(self) -> None:
        """Manual mode, create_response false, or no audio: commit and ask, as before."""
        assert plan_turn(F.OMNI, None, audio=True, image=False) == TurnPlan(True, False)
        no_auto = {"type": "server_vad", "create_response": False}
        assert plan_turn(F.OMNI, no_auto, audio=True, image=False).commit
        assert plan_turn(F.OMNI, {"type": "server_vad"}, audio=False, image=True).commit
        assert plan_turn(F.OMNI, {"type": "server_vad"}, audio=False, image=False) == TurnPlan(
            commit=False, server_creates=False
        )

    def test_livetranslate(self) -> None:
        """LiveTranslate never commits; without turn detection or audio respond() cannot run."""
        plan = plan_turn(
            F.LIVETRANSLATE_V38, {"type": "speaker_detection"}, audio=True, image=False
        )
        assert not plan.commit and plan.server_creates
        with pytest.raises(ds.UsageError, match="finish_session"):
            plan_turn(F.LIVETRANSLATE, None, audio=True, image=False)
        with pytest.raises(ds.ConfigError, match="needs audio"):
            plan_turn(F.LIVETRANSLATE, {"type": "server_vad"}, audio=False, image=False)


@pytest.mark.parametrize("model", [OMNI35, QA])
def test_finish_refusal_names_send_raw(client: ds.Client, model: str) -> None:
    """Where the family has no session.finish, the refusal names send_raw() as the way out."""
    session = client.realtime.connect(model=model)
    with session, pytest.raises(ds.UsageError, match=r"send_raw\(\)"):
        session.finish_session(timeout=5)


class TestCheckClientEvent:
    """The per-family client-event table, socket-free."""

    @pytest.mark.parametrize(
        "wire_type",
        [
            "session.update",
            "input_audio_buffer.append",
            "input_image_buffer.append",
            "session.finish",
        ],
    )
    def test_livetranslate_documented(self, wire_type: str) -> None:
        """The four events LiveTranslate's docs list pass on both LiveTranslate families."""
        for family in (F.LIVETRANSLATE, F.LIVETRANSLATE_V38):
            check_client_event(family, "m", wire_type)

    def test_refusal_names_send_raw(self) -> None:
        """A refusal names the event, the model, the family and send_raw()."""
        with pytest.raises(ds.UsageError) as caught:
            check_client_event(F.LIVETRANSLATE_V38, LT38, "response.cancel")
        message = str(caught.value)
        assert "response.cancel" in message and LT38 in message and "send_raw()" in message

    def test_omni_open(self) -> None:
        """The Omni families leave the list open: any event passes."""
        for family in (F.OMNI, F.OMNI_V38):
            check_client_event(family, "m", "conversation.item.truncate")


def test_respond_refuses_before_any_frame(server: LocalRealtimeServer, client: ds.Client) -> None:
    """respond() with an input the family's docs do not list refuses it before sending the audio."""
    with client.realtime.connect(model=QA) as session:
        with pytest.raises(ds.UsageError, match=r"input_image_buffer\.append"):
            session.respond(SPEECH, image=b"\xff\xd8\xff\xe0" + bytes(100), timeout=30)
        session.update_session(ds.SessionUpdate(instructions="sync"), timeout=10)
    assert _sent(server, "input_audio_buffer.append") == []
