"""Qwen-ASR-Realtime sessions (SPEECH_FAMILIES.md B): configuration, rules, wire and transcripts.

Layers: the configuration and its frame, the transcript book and the
family's rules in the state (no sockets); then the session over loopback
against a scripted raw server (tests/_asr_peer.py) that answers as the
service's docs write it, frame for frame.
"""

from __future__ import annotations

import array
import base64
import json
import threading
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._core.state import SessionState, TranscriptSpans
from dashscope_sync._sessions.transcription import UtteranceBook
from dashscope_sync._wire.codec import decode
from dashscope_sync._wire.config import SessionUpdate
from dashscope_sync._wire.events import ErrorEvent, ErrorInfo
from dashscope_sync._wire.families import client_events, family_of

from ._asr_peer import asr_peer, completed_event, text_event

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

_PCM = b"\x01\x00" * 1600  # 100 ms at 16 kHz


# The configuration and its frame ---------------------------------------------------


class TestFamily:
    def test_every_documented_model_is_asr(self) -> None:
        """Every documented Qwen-ASR-Realtime name and snapshot is the QWEN_ASR family."""
        assert ds.ASR_MODELS == (
            "qwen3-asr-flash-realtime",
            "qwen3-asr-flash-realtime-2025-10-27",
            "qwen3-asr-flash-realtime-2026-02-10",
        )
        for model in ds.ASR_MODELS:
            assert family_of(model) is ds.ModelFamily.QWEN_ASR

    def test_documented_client_events_only(self) -> None:
        """The family's client events are the four its docs list."""
        assert client_events(ds.ModelFamily.QWEN_ASR) == {
            "session.update",
            "input_audio_buffer.append",
            "input_audio_buffer.commit",
            "session.finish",
        }

    def test_realtime_connect_refuses_asr_model(self) -> None:
        """client.realtime.connect() with an ASR model is a ConfigError naming the entry point."""
        client = ds.Client("k", base_url="ws://127.0.0.1:9/")
        for model in ds.ASR_MODELS:
            with pytest.raises(ds.ConfigError, match=r"client\.transcription\.connect"):
                client.realtime.connect(model=model, timeout=1)
        forced = ds.RealtimeConfig(model="my-asr-model", family=ds.ModelFamily.QWEN_ASR)
        with pytest.raises(ds.ConfigError, match=r"client\.transcription\.connect"):
            client.realtime.connect(forced, timeout=1)

    def test_transcription_refuses_other_family(self) -> None:
        """A conversation model is refused by TranscriptionConfig, naming client.realtime."""
        with pytest.raises(ds.ConfigError, match=r"client\.realtime\.connect"):
            ds.TranscriptionConfig(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME)


class TestConfigFrame:
    def test_vad_frame_matches_the_docs(self) -> None:
        """The documented VAD example's session object is produced field for field."""
        config = ds.TranscriptionConfig(
            language="zh",
            corpus_text="DashScope, Qwen",
            turn_detection=ds.TurnDetection(threshold=0.0, silence_duration_ms=400),
        )
        assert config.as_session() == {
            "input_audio_format": "pcm",
            "sample_rate": 16000,
            "input_audio_transcription": {"language": "zh", "corpus": {"text": "DashScope, Qwen"}},
            "turn_detection": {"type": "server_vad", "threshold": 0.0, "silence_duration_ms": 400},
        }

    def test_defaults_send_the_mode_but_not_the_server_defaults(self) -> None:
        """By default VAD is sent as its type only: the server's disputed defaults apply."""
        assert ds.TranscriptionConfig().as_session() == {
            "input_audio_format": "pcm",
            "sample_rate": 16000,
            "turn_detection": {"type": "server_vad"},
        }

    def test_manual_mode_is_null(self) -> None:
        """Manual mode is turn_detection null, as the docs write it."""
        session = ds.TranscriptionConfig(turn_detection=None, sample_rate=8000).as_session()
        assert session["turn_detection"] is None
        assert session["sample_rate"] == 8000

    def test_dict_turn_detection_and_extra(self) -> None:
        """A dict turn detection is checked like a TurnDetection; extra merges deeply."""
        config = ds.TranscriptionConfig(
            turn_detection={"threshold": 0.2},
            language="en",
            extra={"input_audio_transcription": {"new_field": 1}},
        )
        session = config.as_session()
        assert session["turn_detection"] == {"type": "server_vad", "threshold": 0.2}
        assert session["input_audio_transcription"] == {"language": "en", "new_field": 1}

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"input_audio_format": "wav"}, "input_audio_format"),
            ({"sample_rate": 24000}, "sample_rate"),
            ({"language": "english"}, "language"),
            ({"corpus_text": ""}, "corpus_text"),
            ({"turn_detection": {"threshold": 1.5}}, "threshold"),
            ({"turn_detection": {"silence_duration_ms": 100}}, "silence_duration_ms"),
            ({"turn_detection": {"silence_duration_ms": 7000}}, "silence_duration_ms"),
            ({"turn_detection": ds.TurnDetection(prefix_padding_ms=300)}, "prefix_padding_ms"),
            ({"turn_detection": ds.TurnDetection(type="semantic_vad")}, "semantic_vad"),
            ({"turn_detection": {"bogus": 1}}, "bogus"),
            ({"turn_detection": "server_vad"}, "turn_detection"),
            ({"extra": ["x"]}, "extra"),
            ({"model": ""}, "model"),
        ],
    )
    def test_bad_values_refused(self, fields: dict[str, object], match: str) -> None:
        """Each out-of-range or foreign setting is a ConfigError naming it."""
        with pytest.raises(ds.ConfigError, match=match):
            ds.TranscriptionConfig(**fields)  # type: ignore[arg-type]


# Transcripts and the family's rules, no sockets ---------------------------------------


class TestTranscriptBook:
    def test_interim_final_and_speech_times(self) -> None:
        """Text events become interim transcripts, completed the final one, with VAD times."""
        book = UtteranceBook()
        frames = [
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": 64,
                "item_id": "item_b",
            },
            text_event("item_b", "今天", "天气不错"),
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": 2128,
                "item_id": "item_b",
            },
            completed_event("item_b", "今天天气怎么样"),
        ]
        out = [book.take(decode(json.dumps(f))) for f in frames]
        assert out[0] is None and out[2] is None
        interim, final = out[1], out[3]
        assert interim == ds.Utterance(
            item_id="item_b",
            text="今天",
            stash="天气不错",
            language="zh",
            emotion="neutral",
            speech_start_ms=64,
        )
        assert str(interim) == "今天天气不错"
        assert final == ds.Utterance(
            item_id="item_b",
            text="今天天气怎么样",
            final=True,
            language="zh",
            emotion="neutral",
            speech_start_ms=64,
            speech_end_ms=2128,
        )

    def test_failed_raises_typed_error(self) -> None:
        """A .failed event raises TranscriptionFailedError with the item and the code."""
        event = ds.ConversationItemInputAudioTranscriptionFailed(
            item_id="item_x", error=ErrorInfo(code="asr_error", message="bad audio")
        )
        with pytest.raises(ds.TranscriptionFailedError, match="bad audio") as caught:
            UtteranceBook().take(event)
        assert caught.value.item_id == "item_x"
        assert caught.value.code == "asr_error"
        assert isinstance(caught.value, ds.APIError)

    def test_result_joins_finals(self) -> None:
        """The result joins English with spaces, Chinese without, and takes the main language."""
        finals = [
            ds.Utterance(item_id="a", text="Hello there.", final=True, language="en"),
            ds.Utterance(item_id="b", text="How are you?", final=True, language="en"),
            ds.Utterance(item_id="c", text="你好。", final=True, language="zh"),
            ds.Utterance(item_id="d", text="再见。", final=True, language="zh"),
            ds.Utterance(item_id="e", text="Bye", final=True, language="en"),
        ]
        result = ds.TranscriptionResult.of(finals)
        assert result.text == "Hello there. How are you?你好。再见。Bye"
        assert result.language == "en"
        assert result.transcripts == tuple(finals)


class TestStateRules:
    def _state(self) -> SessionState:
        state = SessionState()
        state.family = ds.ModelFamily.QWEN_ASR
        return state

    def test_state_records_vad_spans_for_every_reader(self) -> None:
        """The state feeds its TranscriptSpans every event, and keeps a span past its item's final."""
        state = self._state()
        state.spans = TranscriptSpans()
        frames = [
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 64, "item_id": "a"},
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2128, "item_id": "a"},
            completed_event("a", "done"),
        ]
        for frame in frames:
            state.receive(decode(json.dumps(frame)), 0.0)
        assert state.spans.of("a") == (64, 2128)
        assert state.spans.of("unknown") == (None, None)

    def test_second_update_refused(self) -> None:
        """After the one update went out, the state refuses another with the reason."""
        state = self._state()
        assert state.late_update_warning(SessionUpdate()) is None
        state.update_sent = True
        with pytest.raises(ds.UsageError, match="once"):
            state.late_update_warning(SessionUpdate())

    @pytest.mark.parametrize("echo", [None, {"type": "server_vad"}])
    def test_commit_follows_what_was_sent(self, echo: dict[str, str] | None) -> None:
        """The commit is refused under the VAD sent and allowed in the manual mode sent,
        whatever the server echoed (its documented defaults disagree)."""
        state = self._state()
        assert state.commit_refusal() is not None  # nothing sent yet: the default is VAD
        state.accepted = {"turn_detection": None}
        assert state.commit_refusal() is None
        state.accepted = {"turn_detection": {"type": "server_vad"}}
        assert state.commit_refusal() is not None

    def test_other_families_unaffected(self) -> None:
        """The rules are Qwen-ASR's only."""
        state = SessionState()
        state.family = ds.ModelFamily.OMNI
        state.update_sent = True
        assert state.commit_refusal() is None
        assert state.late_update_warning(SessionUpdate()) is None


# The session over loopback, against a scripted server -------------------------------------


class TestConnect:
    def test_one_update_then_ready(self) -> None:
        """connect() sends exactly the documented update once and returns after session.updated."""
        with (
            asr_peer() as (peer, client),
            client.transcription.connect(
                language="zh",
                corpus_text="DashScope, Qwen",
                turn_detection=ds.TurnDetection(threshold=0.0, silence_duration_ms=400),
                timeout=10,
            ) as session,
        ):
            assert session.id == "sess_asr"
            assert session.info.input_audio_format == "pcm16"
            assert session.family is ds.ModelFamily.QWEN_ASR
            updates = peer.frames("session.update")
            assert len(updates) == 1
            frame = updates[0]
            assert set(frame) == {"event_id", "type", "session"}
            assert frame["session"] == {
                "input_audio_format": "pcm",
                "sample_rate": 16000,
                "input_audio_transcription": {
                    "language": "zh",
                    "corpus": {"text": "DashScope, Qwen"},
                },
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.0,
                    "silence_duration_ms": 400,
                },
            }

    def test_refused_update_fails_connect(self) -> None:
        """An error naming the update makes connect() raise it, and the connection is dropped."""
        with (
            asr_peer(refuse_update=True) as (_, client),
            pytest.raises(ds.APIError, match="Invalid value") as caught,
        ):
            client.transcription.connect(ds.TranscriptionConfig(language="en"), timeout=10)
        assert caught.value.param == "session.input_audio_transcription.language"

    def test_second_update_refused_before_sending(self) -> None:
        """update_session() is a UsageError with the reason, and nothing goes out."""
        with asr_peer() as (peer, client):
            with client.transcription.connect(timeout=10) as session:
                with pytest.raises(ds.UsageError, match="once"):
                    session.update_session(ds.TranscriptionConfig(language="en"))
                session.append_audio(_PCM)  # a later frame: everything before it has arrived
                session.finish(timeout=10)
            assert [f["type"] for f in peer.frames()] == [
                "session.update",
                "input_audio_buffer.append",
                "session.finish",
            ]


class TestSending:
    def test_append_frame(self) -> None:
        """An append is {event_id, type, audio} with the base64 of the PCM given."""
        with asr_peer() as (peer, client):
            with client.transcription.connect(timeout=10) as session:
                samples = array.array("h", [1, -1, 300] * 100)
                event_id = session.append_audio(samples)
                session.finish(timeout=10)
            (append,) = peer.frames("input_audio_buffer.append")
            assert set(append) == {"event_id", "type", "audio"}
            assert append["event_id"] == event_id
            assert base64.b64decode(append["audio"]) == samples.tobytes()

    @pytest.mark.parametrize(
        ("audio", "error"),
        [
            (b"", ds.ConfigError),
            (b"\x01\x02\x03", ds.ConfigError),
            ("text", ds.ConfigTypeError),
            (array.array("f", [0.5]), ds.ConfigTypeError),
        ],
    )
    def test_bad_audio_refused_before_sending(self, audio: object, error: type) -> None:
        """Audio that is not mono PCM16 is a typed error, and no append goes out."""
        with asr_peer() as (peer, client):
            with client.transcription.connect(timeout=10) as session:
                with pytest.raises(error):
                    session.append_audio(audio)  # type: ignore[arg-type]
                session.finish(timeout=10)
            assert peer.frames("input_audio_buffer.append") == []

    def test_commit_refused_under_vad(self) -> None:
        """commit_audio() under VAD is a UsageError and sends nothing."""
        with asr_peer() as (peer, client):
            with client.transcription.connect(timeout=10) as session:
                with pytest.raises(ds.UsageError, match="manual mode"):
                    session.commit_audio()
                session.finish(timeout=10)
            assert peer.frames("input_audio_buffer.commit") == []

    @pytest.mark.parametrize(
        "echo",
        [
            {
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "silence_duration_ms": 200,
                }
            },
            {
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.2,
                    "silence_duration_ms": 800,
                }
            },
        ],
    )
    def test_manual_commit_whatever_the_echo(self, echo: dict[str, object]) -> None:
        """In manual mode the commit goes out as {event_id, type} even when the server's echo
        shows either documented set of VAD defaults (SPEECH_FAMILIES.md E10)."""

        def committed(event: dict[str, object]) -> list[dict[str, object]]:
            return [
                {"type": "input_audio_buffer.committed", "item_id": "item_1"},
                text_event("item_1", "", "hello"),
                completed_event("item_1", "hello", "en"),
            ]

        with asr_peer(echo=echo, on_commit=committed) as (peer, client):
            with client.transcription.connect(turn_detection=None, timeout=10) as session:
                session.append_audio(_PCM)
                event_id = session.commit_audio()
                final = next(t for t in session.transcripts(timeout=10) if t.final)
                assert final.text == "hello"
                session.finish(timeout=10)
            (commit,) = peer.frames("input_audio_buffer.commit")
            assert commit == {"event_id": event_id, "type": "input_audio_buffer.commit"}


class TestFinish:
    @pytest.mark.parametrize("server_closes", [False, True])
    def test_finish_then_close_either_side(self, server_closes: bool) -> None:
        """finish() sends {event_id, type}, returns after session.finished and ends the session
        cleanly whether the client closes (the docs) or the server closes first."""
        finals = [completed_event("item_1", "last words", "en")]
        with asr_peer(on_finish=finals, server_closes=server_closes) as (peer, client):
            session = client.transcription.connect(timeout=10)
            session.append_audio(_PCM)
            session.finish(timeout=10)
            assert session.closed
            got = list(session.transcripts(timeout=10))
            assert [t.text for t in got] == ["last words"]
            assert session.close_code == 1000
            (finish,) = peer.frames("session.finish")
            assert set(finish) == {"event_id", "type"}

    def test_finish_from_another_thread_ends_transcripts(self) -> None:
        """transcripts() read live ends at session.finished when another thread finishes,
        after yielding the transcripts that came before it (the README's pattern)."""
        finals = [completed_event("item_1", "one", "en"), completed_event("item_2", "two", "en")]
        with asr_peer(on_finish=finals) as (_, client):
            session = client.transcription.connect(timeout=10)
            errors: list[BaseException] = []

            def send() -> None:
                try:
                    session.append_audio(_PCM)
                    session.finish(timeout=10)
                except BaseException as exc:  # reported on the test's thread
                    errors.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            got = [t.text for t in session.transcripts(timeout=10)]
            sender.join(10)
            assert errors == []
            assert got == ["one", "two"]
            assert session.closed

    def test_finish_stops_the_microphone_before_session_finish(self) -> None:
        """finish() stops an attached microphone before sending session.finish, so no audio follows it."""
        with asr_peer() as (peer, client):

            class StopsBeforeFinish:
                """A microphone that records how many session.finish frames the server had when stopped."""

                rate = 16000

                def __init__(self) -> None:
                    self.finishes_at_stop: int | None = None

                def stream_to(self, session: object, **_: object) -> None:
                    """Starts nothing: the test only checks when the stream is stopped."""

                def stop_streaming(self) -> None:
                    """Record what the server had received when the stream stopped."""
                    self.finishes_at_stop = len(peer.frames("session.finish"))

            microphone = StopsBeforeFinish()
            session = client.transcription.connect(timeout=10)
            session.attach(microphone=microphone)
            session.finish(timeout=10)
        assert microphone.finishes_at_stop == 0

    def test_finish_times_out(self) -> None:
        """A server that never answers session.finish makes finish() raise DashScopeTimeout."""
        with (
            asr_peer(answer_finish=False) as (_, client),
            client.transcription.connect(timeout=10) as session,
            pytest.raises(ds.DashScopeTimeout),
        ):
            session.finish(timeout=0.2)


class TestTranscripts:
    def test_interims_replace_and_final_ends_item(self) -> None:
        """Every text event yields an interim of its item; completed yields the final."""

        def speak(n: int) -> list[dict[str, object]]:
            if n != 1:
                return []
            return [
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "i"},
                text_event("i", "", "今"),
                text_event("i", "今天", "天气"),
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "i"},
                {"type": "input_audio_buffer.committed", "item_id": "i"},
                completed_event("i", "今天天气不错"),
            ]

        with (
            asr_peer(on_append=speak) as (_, client),
            client.transcription.connect(timeout=10) as session,
        ):
            session.append_audio(_PCM)
            got = []
            for transcript in session.transcripts(timeout=10):
                got.append(transcript)
                if transcript.final:
                    break
            session.finish(timeout=10)
        assert [(str(t), t.final) for t in got] == [
            ("今", False),
            ("今天天气", False),
            ("今天天气不错", True),
        ]
        assert got[-1].speech_start_ms == 0 and got[-1].speech_end_ms == 900

    def test_failed_raises_and_is_an_event(self) -> None:
        """A .failed raises TranscriptionFailedError from the iterator and reaches handlers."""
        failed = {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "item_b",
            "content_index": 0,
            "error": {"code": "asr_failed", "message": "cannot decode", "param": "audio"},
        }
        seen: list[ds.ServerEvent] = []
        handled = threading.Event()

        def on_failed(event: ds.ConversationItemInputAudioTranscriptionFailed) -> None:
            seen.append(event)
            handled.set()

        with (
            asr_peer(on_append=lambda n: [failed] if n == 1 else []) as (_, client),
            client.transcription.connect(timeout=10) as session,
        ):
            session.on(ds.ConversationItemInputAudioTranscriptionFailed, on_failed)
            session.append_audio(_PCM)
            with pytest.raises(ds.TranscriptionFailedError, match="cannot decode") as caught:
                list(session.transcripts(timeout=10))
            assert handled.wait(10)
            session.finish(timeout=10)
        assert caught.value.item_id == "item_b"
        assert isinstance(seen[0], ds.ConversationItemInputAudioTranscriptionFailed)

    def test_restart_after_failure_keeps_the_speech_start(self) -> None:
        """transcripts() called again after a failure still knows where an item in progress started."""
        failed = {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "item_j",
            "error": {"code": "asr_failed", "message": "cannot decode"},
        }

        def speak(n: int) -> list[dict[str, object]]:
            if n != 1:
                return []
            return [
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 40, "item_id": "i"},
                failed,
                text_event("i", "hel", "lo"),
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "i"},
                completed_event("i", "hello", "en"),
            ]

        with (
            asr_peer(on_append=speak) as (_, client),
            client.transcription.connect(timeout=10) as session,
        ):
            session.append_audio(_PCM)
            with pytest.raises(ds.TranscriptionFailedError):
                list(session.transcripts(timeout=10))
            got = []
            for transcript in session.transcripts(timeout=10):
                got.append(transcript)
                if transcript.final:
                    break
            session.finish(timeout=10)
        assert [(str(t), t.speech_start_ms) for t in got] == [("hello", 40), ("hello", 40)]
        assert got[-1].speech_end_ms == 900

    def test_empty_commit_error_does_not_end_transcripts(self) -> None:
        """An input_audio_buffer_commit_empty error is skipped: transcripts() goes on to the next final."""
        commits: list[int] = []

        def on_commit(event: dict[str, object]) -> list[dict[str, object]]:
            commits.append(1)
            if len(commits) == 1:
                return [
                    {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "input_audio_buffer_commit_empty",
                            "message": "Error committing input audio buffer: buffer is empty.",
                        },
                    }
                ]
            return [
                {"type": "input_audio_buffer.committed", "item_id": "item_1"},
                completed_event("item_1", "hello", "en"),
            ]

        seen: list[ds.ErrorEvent] = []
        with (
            asr_peer(on_commit=on_commit) as (_, client),
            client.transcription.connect(turn_detection=None, timeout=10) as session,
        ):
            session.on(ds.ErrorEvent, seen.append)
            session.commit_audio()
            session.append_audio(_PCM)
            session.commit_audio()
            final = next(t for t in session.transcripts(timeout=10) if t.final)
            session.finish(timeout=10)
        assert final.text == "hello"
        assert [e.error.code for e in seen] == ["input_audio_buffer_commit_empty"]

    def test_every_documented_server_event_is_typed(self) -> None:
        """Each server event of SPEECH_FAMILIES.md B3, as its docs write it, decodes to its class."""
        frames = {
            ds.SessionCreated: {
                "event_id": "event_1234",
                "type": "session.created",
                "session": {
                    "id": "sess_001",
                    "object": "realtime.session",
                    "model": "qwen3-asr-flash-realtime",
                    "modalities": ["text"],
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "silence_duration_ms": 200,
                    },
                },
            },
            ds.InputAudioBufferSpeechStarted: {
                "event_id": "e",
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": 64,
                "item_id": "item_x",
            },
            ds.InputAudioBufferSpeechStopped: {
                "event_id": "e",
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": 28128,
                "item_id": "item_x",
            },
            ds.InputAudioBufferCommitted: {
                "event_id": "event_1121",
                "type": "input_audio_buffer.committed",
                "previous_item_id": "msg_001",
                "item_id": "msg_002",
            },
            ds.ConversationItemCreated: {
                "type": "conversation.item.created",
                "event_id": "e",
                "previous_item_id": "item_a",
                "item": {
                    "id": "item_b",
                    "object": "realtime.item",
                    "type": "message",
                    "status": "completed",
                    "role": "user",
                    "content": [{"type": "input_audio", "transcript": None}],
                },
            },
            ds.ConversationItemInputAudioTranscriptionText: text_event("item_b", "今天", "天气"),
            ds.ConversationItemInputAudioTranscriptionCompleted: completed_event("item_b", "x"),
            ds.ConversationItemInputAudioTranscriptionFailed: {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": "item_b",
                "content_index": 0,
                "error": {"code": "c", "message": "m", "param": "p"},
            },
            ds.SessionFinished: {"event_id": "event_2239", "type": "session.finished"},
            ds.ErrorEvent: {
                "event_id": "e",
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid_value",
                    "message": "Invalid value",
                    "param": "session.input_audio_transcription.model",
                    "event_id": "event_123",
                },
            },
        }
        for cls, frame in frames.items():
            event = decode(json.dumps(frame))
            assert type(event) is cls, frame["type"]
        updated = decode(json.dumps({**frames[ds.SessionCreated], "type": "session.updated"}))
        assert isinstance(updated, ds.SessionUpdated)
        assert updated.session.turn_detection == {
            "type": "server_vad",
            "threshold": 0.5,
            "silence_duration_ms": 200,
        }

    def test_completed_carries_language_and_emotion(self) -> None:
        """The completed event's language and emotion are typed fields."""
        event = decode(json.dumps(completed_event("i", "hi", "en")))
        assert isinstance(event, ds.ConversationItemInputAudioTranscriptionCompleted)
        assert (event.language, event.emotion) == ("en", "neutral")


class TestTranscribe:
    @pytest.mark.parametrize("manual", [False, True])
    def test_buffer_end_to_end(self, manual: bool) -> None:
        """transcribe() streams 100 ms appends, commits in manual mode only, finishes, and
        returns the finals in order with their language."""
        finals = [
            completed_event("item_1", "Hello there.", "en"),
            completed_event("item_2", "Goodbye.", "en"),
        ]
        with asr_peer(on_finish=finals) as (peer, client):
            result = client.transcription.transcribe(
                _PCM * 5 + b"\x00\x00" * 800,
                turn_detection=None if manual else ds.TurnDetection(),
            )
            appends = peer.frames("input_audio_buffer.append")
            assert [len(base64.b64decode(a["audio"])) for a in appends] == [3200] * 5 + [1600]
            assert len(peer.frames("input_audio_buffer.commit")) == (1 if manual else 0)
            assert [f["type"] for f in peer.frames()][-1] == "session.finish"
        assert result.text == "Hello there. Goodbye."
        assert result.language == "en"
        assert [t.item_id for t in result.transcripts] == ["item_1", "item_2"]

    def test_timeout_spans_the_real_time_sending(self) -> None:
        """transcribe(realtime=True, timeout=...) counts the pace of speech: 3 s of audio cannot fit 1 s."""
        with asr_peer() as (peer, client):
            with pytest.raises(ds.DashScopeTimeout):
                client.transcription.transcribe(_PCM * 30, realtime=True, timeout=1.0)
            assert len(peer.frames("input_audio_buffer.append")) < 30
            assert peer.frames("session.finish") == []

    def test_file_read_and_failure_raised(self, tmp_path: Path) -> None:
        """A WAV path is read with load_audio; a failed item raises TranscriptionFailedError."""
        path = tmp_path / "clip.wav"
        path.write_bytes(ds.pcm16_to_wav(_PCM * 3, 16000))
        failed = {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "item_1",
            "error": {"code": "x", "message": "no"},
        }
        with asr_peer(on_finish=[failed]) as (peer, client):
            with pytest.raises(ds.TranscriptionFailedError):
                client.transcription.transcribe(path)
            assert len(peer.frames("input_audio_buffer.append")) == 3

    @pytest.mark.parametrize(
        ("audio", "error"),
        [(b"\x00", ds.ConfigError), ("missing.wav", ds.ConfigError), (3.5, ds.ConfigTypeError)],
    )
    def test_bad_input_before_connecting(self, audio: object, error: type) -> None:
        """Audio that cannot be read or is not PCM16 fails before any connection."""
        client = ds.Client("k", base_url="ws://127.0.0.1:9/")
        with pytest.raises(error):
            client.transcription.transcribe(audio)  # type: ignore[arg-type]

    def test_opus_refused(self) -> None:
        """transcribe() sends PCM: an Opus configuration is refused before connecting."""
        client = ds.Client("k", base_url="ws://127.0.0.1:9/")
        with pytest.raises(ds.ConfigError, match="Opus"):
            client.transcription.transcribe(_PCM, ds.TranscriptionConfig(input_audio_format="opus"))


@pytest.mark.parametrize(
    "error",
    [
        ErrorInfo(code="input_audio_buffer_commit_empty", message="buffer is empty"),
        ErrorInfo(code="invalid_value", message="x", param="input_audio_buffer.commit"),
        ErrorInfo(code="invalid_value", message="Error committing input audio buffer: no"),
    ],
)
def test_refused_commit_does_not_end_transcripts(error: ErrorInfo) -> None:
    """A refused commit's error (by code, param or the documented words) yields nothing and raises nothing."""
    assert UtteranceBook().take(ErrorEvent(error=error)) is None


def test_error_event_raises_from_transcripts() -> None:
    """An error event stops transcripts() with its APIError."""
    event = ErrorEvent(error=ErrorInfo(type="server_error", message="boom"))
    with pytest.raises(ds.APIError, match="boom"):
        UtteranceBook().take(event)
