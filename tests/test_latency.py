"""Latency figures: the level test, the latency book and summary (pure), then each figure
through a session against the local server, in manual and server-VAD mode.

The session tests assert only orderings and lower bounds the server's knobs
guarantee (``set_reply_delay``, ``delta_delay``), never how fast this machine is.
"""

from __future__ import annotations

import base64
import json
import math
import statistics
import threading
import time
from collections.abc import Iterator

import attrs
import pytest

import dashscope_sync as ds
from dashscope_sync._audio.level import AUDIBLE_PEAK, audible
from dashscope_sync._conversation.latency import FIGURES, KEPT, LatencyBook
from dashscope_sync._conversation.metrics import Metrics, percentile, snapshot, summarize
from dashscope_sync._wire.codec import decode
from dashscope_sync.testing import LocalRealtimeServer, speech_like_pcm16

from .audio_fakes import VirtualOutput
from .conftest import MODEL

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]


def pcm(*samples: int) -> bytes:
    return b"".join(sample.to_bytes(2, "little", signed=True) for sample in samples)


def tone(seconds: float, rate: int = 24000, amplitude: int = 8000) -> bytes:
    count = int(rate * seconds)
    return pcm(*(int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(count)))


# Pure: the level test ------------------------------------------------------------------


class TestAudible:
    def test_silence_is_not_audible(self) -> None:
        """Zeros, and noise just under the threshold, are silence."""
        assert not audible(bytes(4800))
        assert not audible(pcm(AUDIBLE_PEAK - 1, -(AUDIBLE_PEAK - 1), 3, -7))

    def test_one_loud_sample_is_audible(self) -> None:
        """A single sample at the threshold, positive or negative, makes the chunk audible."""
        assert audible(bytes(4000) + pcm(AUDIBLE_PEAK) + bytes(4000))
        assert audible(bytes(4000) + pcm(-AUDIBLE_PEAK))

    def test_little_endian_samples(self) -> None:
        """Samples are read little-endian: 0x0100 (256) is loud, 0x0001 is not."""
        assert audible(b"\x00\x01")
        assert not audible(b"\x01\x00")

    def test_empty_and_odd_lengths(self) -> None:
        """No whole sample is silence; a trailing odd byte is ignored."""
        assert not audible(b"")
        assert not audible(b"\xff")
        assert audible(pcm(30000) + b"\x00")

    def test_threshold_is_a_parameter(self) -> None:
        """A custom threshold moves the line."""
        assert audible(pcm(50), threshold=50) and not audible(pcm(50), threshold=51)


# Pure: percentiles and the summary ------------------------------------------------------


class TestSummary:
    def test_percentile_interpolates(self) -> None:
        """Percentiles interpolate linearly, as statistics.quantiles(method='inclusive')."""
        values = [0.3, 0.1, 0.4, 0.2, 0.9, 0.5, 0.7]
        ordered = sorted(values)
        expected = statistics.quantiles(values, n=20, method="inclusive")
        assert percentile(ordered, 0.5) == pytest.approx(statistics.median(values))
        assert percentile(ordered, 0.95) == pytest.approx(expected[18])
        assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
        assert percentile([7.0], 0.95) == 7.0
        assert percentile(ordered, 0.0) == 0.1 and percentile(ordered, 1.0) == 0.9

    def test_percentile_refuses_nonsense(self) -> None:
        """No values, or a fraction outside 0-1, is a ValueError."""
        with pytest.raises(ValueError):
            percentile([], 0.5)
        with pytest.raises(ValueError):
            percentile([1.0], 1.5)

    def test_summarize(self) -> None:
        """A summary has the count, p50, p95 and max; an empty one has None for each."""
        summary = summarize([0.2, 0.1, 0.3])
        assert (summary.count, summary.p50, summary.max) == (3, 0.2, 0.3)
        assert summary.p95 == pytest.approx(0.29)
        empty = summarize([])
        assert (empty.count, empty.p50, empty.p95, empty.max) == (0, None, None, None)
        assert empty.describe() == "n/a" and "none" in repr(empty)
        assert summary.describe() == "p50 0.2 s, p95 0.29 s, max 0.3 s (n=3)"

    def test_metrics_lines_skip_figures_that_never_applied(self) -> None:
        """Metrics.lines() has one line per figure with values, and the repr is one line."""
        columns = [[] for _ in FIGURES]
        columns[FIGURES.index("first_audio_delay")] = [0.1, 0.3]
        metrics = Metrics.from_values(2, columns, [0.02])
        assert metrics.lines() == [
            "first audio delay: p50 0.2 s, p95 0.29 s, max 0.3 s (n=2)",
            "interrupt to silence: p50 0.02 s, p95 0.02 s, max 0.02 s (n=1)",
        ]
        assert repr(metrics) == (
            "<Metrics 2 responses: first_audio_delay p50 0.2 s, interrupt_to_silence p50 0.02 s>"
        )
        assert "<table>" in metrics._repr_html_()
        assert repr(ds.Metrics()) == "<Metrics 0 responses>" and ds.Metrics().lines() == []


# Pure: the latency book --------------------------------------------------------------------


def event(frame: dict[str, object]) -> ds.ServerEvent:
    return decode(json.dumps({"event_id": "e", **frame}))


def created(rid: str) -> ds.ServerEvent:
    return event({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})


def audio(rid: str, data: bytes) -> ds.ServerEvent:
    delta = base64.b64encode(data).decode()
    return event({"type": "response.audio.delta", "response_id": rid, "delta": delta})


class TestLatencyBook:
    def test_figures_of_a_vad_turn(self) -> None:
        """Under VAD the end of speech is speech_stopped's arrival, and starts the delays of a
        response no handle follows; silence delays the first audible chunk."""
        book = LatencyBook()
        book.receive(event({"type": "input_audio_buffer.speech_stopped"}), 10.0)
        timing = book.created("r1", 10.2, None)
        book.receive(audio("r1", bytes(4800)), 10.5)
        book.receive(audio("r1", tone(0.1)), 10.6)
        book.receive(audio("r1", bytes(4800)), 10.7)
        text = {"type": "response.audio_transcript.delta", "response_id": "r1", "delta": "Hi"}
        book.receive(event(text), 10.55)
        book.played("r1", 11.0)
        book.played("r1", 12.0)  # only the first sample counts
        book.receive(event({"type": "response.done", "response": {"id": "r1"}}), 11.5)
        figures = dict(zip(FIGURES, timing.figures(), strict=True))
        assert figures == pytest.approx(
            {
                "end_of_speech_to_first_audio": 0.5,
                "first_audio_delay": 0.5,
                "first_audible_delay": 0.6,
                "first_text_delay": 0.55,
                "playback_start": 1.0,
                "total_time": 1.5,
            }
        )

    def test_the_end_of_speech_goes_to_the_next_response_only(self) -> None:
        """A commit's time goes to the next response.created, not to a later one; a
        followed response's delays start at its handle's request."""
        book = LatencyBook()
        book.speech_ended(5.0)
        first = book.created("r1", 5.3, requested_at=5.1)
        second = book.created("r2", 6.0, requested_at=None)
        book.receive(audio("r1", tone(0.05)), 5.4)
        book.receive(audio("r2", tone(0.05)), 6.1)
        assert first.end_of_speech_to_first_audio == pytest.approx(0.4)
        assert first.since_request(first.first_audio_at) == pytest.approx(0.3)
        assert second.end_of_speech_to_first_audio is None
        assert second.since_request(second.first_audio_at) == pytest.approx(0.1)

    def test_a_filler_is_not_an_end_of_speech(self) -> None:
        """speech_stopped with reason turn_invalid (no response follows it) is ignored."""
        book = LatencyBook()
        stopped = {"type": "input_audio_buffer.speech_stopped", "reason": "turn_invalid"}
        book.receive(event(stopped), 1.0)
        assert book.created("r1", 2.0, None).speech_ended_at is None

    def test_a_tool_turn_keeps_its_end_of_speech_for_the_answer(self) -> None:
        """A reply that only calls tools passes the turn's end of speech on to the answer the
        user hears; the answer's delays still start at its own request."""
        book = LatencyBook()
        book.speech_ended(5.0)
        calling = book.created("r1", 5.2, requested_at=5.1)
        args = {"type": "response.function_call_arguments.done", "response_id": "r1"}
        book.receive(event({**args, "call_id": "c1", "name": "f", "arguments": "{}"}), 5.3)
        book.receive(event({"type": "response.done", "response": {"id": "r1"}}), 5.4)
        book.output_sent()
        answer = book.created("r2", 5.7, requested_at=5.6)
        book.receive(audio("r2", tone(0.05)), 5.9)
        book.receive(event({"type": "response.done", "response": {"id": "r2"}}), 6.0)
        assert calling.end_of_speech_to_first_audio is None
        assert answer.end_of_speech_to_first_audio == pytest.approx(0.9)
        assert answer.since_request(answer.first_audio_at) == pytest.approx(0.3)
        assert book.created("r3", 7.0, None).speech_ended_at is None  # the turn is over

    def test_a_tool_turn_ends_where_the_user_heard_or_spoke(self) -> None:
        """The end of speech is not passed on by a calling reply that sounded, nor by a cut
        one, nor past a silent final answer or a new end of speech."""
        call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}

        def done(rid: str, status: str = "completed") -> ds.ServerEvent:
            info = {"id": rid, "status": status, "output": [call]}
            return event({"type": "response.done", "response": info})

        book = LatencyBook()
        book.speech_ended(1.0)
        spoken = book.created("r1", 1.1, None)
        book.receive(audio("r1", tone(0.05)), 1.2)  # "let me check": the user heard that
        book.receive(done("r1"), 1.3)
        assert spoken.end_of_speech_to_first_audio == pytest.approx(0.2)
        assert book.created("r2", 1.4, None).speech_ended_at is None
        book.speech_ended(2.0)
        book.created("r3", 2.1, None)
        book.receive(done("r3", "cancelled"), 2.2)
        assert book.created("r4", 2.3, None).speech_ended_at is None
        book.speech_ended(3.0)
        book.created("r5", 3.1, None)
        book.receive(done("r5"), 3.2)
        book.output_sent()
        assert book.created("r6", 3.3, None).speech_ended_at == 3.0  # text mode: no audio
        book.receive(event({"type": "response.done", "response": {"id": "r6"}}), 3.4)
        assert book.created("r7", 3.5, None).speech_ended_at is None
        book.speech_ended(4.0)
        book.created("r8", 4.1, None)
        book.receive(done("r8"), 4.2)
        book.receive(event({"type": "input_audio_buffer.speech_stopped"}), 4.5)
        assert book.created("r9", 4.6, None).speech_ended_at == 4.5

    def test_a_silenced_answer_neither_takes_nor_ends_the_tool_turn(self) -> None:
        """A silenced answer (heard by no one) takes no end of speech and does not end the
        turn: the answer the user hears after it gets the turn's figure."""
        book = LatencyBook()
        book.speech_ended(5.0)
        book.created("r1", 5.2, None)
        args = {"type": "response.function_call_arguments.done", "response_id": "r1"}
        book.receive(event({**args, "call_id": "c1", "name": "f", "arguments": "{}"}), 5.3)
        book.receive(event({"type": "response.done", "response": {"id": "r1"}}), 5.4)
        book.output_sent()
        book.output_sent()
        silenced = book.created("r2", 5.5, None, silent=True)
        book.receive(event({"type": "response.done", "response": {"id": "r2"}}), 5.6)
        heard = book.created("r3", 5.7, None)
        book.receive(audio("r3", tone(0.05)), 5.9)
        assert silenced.speech_ended_at is None
        assert heard.end_of_speech_to_first_audio == pytest.approx(0.9)

    def test_a_tool_turn_without_an_answer_keeps_its_end_of_speech(self) -> None:
        """A tool turn that gets no answer (no output sent, or stopped) gives its end of
        speech to no later reply, and an output sent after the stop does not revive it."""
        call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}

        def calling_turn(rid: str, at: float) -> None:
            book.speech_ended(at)
            book.created(rid, at + 0.1, None)
            book.receive(
                event({"type": "response.done", "response": {"id": rid, "output": [call]}}),
                at + 0.2,
            )

        book = LatencyBook()
        calling_turn("r1", 1.0)  # the program never answers the call
        assert book.created("r2", 4.0, None).speech_ended_at is None
        book.output_sent()  # a late output: that turn is over all the same
        assert book.created("r3", 5.0, None).speech_ended_at is None
        calling_turn("r4", 6.0)
        book.turn_stopped()  # interrupt(), or the tool loop's limit
        book.output_sent()
        assert book.created("r5", 9.0, None).speech_ended_at is None

    def test_the_book_keeps_the_latest_responses_only(self) -> None:
        """Past KEPT responses the oldest are forgotten, so a long session's book stays small."""
        book = LatencyBook()
        for number in range(KEPT + 5):
            book.created(f"r{number}", float(number), None)
        assert len(book.responses) == KEPT and "r0" not in book.responses
        book.receive(audio("r0", tone(0.05)), 1e6)  # a forgotten response: nothing happens
        book.receive(audio(f"r{KEPT + 4}", tone(0.05)), 1e6)
        assert book.responses[f"r{KEPT + 4}"].first_audible_at == 1e6

    def test_snapshot_counts_each_figure_where_it_applied(self) -> None:
        """The snapshot has one column per figure, with only the values that exist."""
        book = LatencyBook()
        book.created("r1", 1.0, None)
        book.receive(audio("r1", bytes(100)), 1.2)
        book.interrupted(0.03)
        responses, columns, interrupts = snapshot(book)
        assert responses == 1 and interrupts == [0.03]
        counts = {name: len(column) for name, column in zip(FIGURES, columns, strict=True)}
        assert counts["first_audio_delay"] == 1 and counts["first_audible_delay"] == 0
        assert counts["end_of_speech_to_first_audio"] == 0
        book.created("r2", 2.0, None, silent=True)  # a silenced tool answer: heard by no one
        book.receive(audio("r2", tone(0.05)), 2.1)
        responses, columns, _ = snapshot(book)
        assert responses == 1 and [len(column) for column in columns] == list(counts.values())


# Through a session -------------------------------------------------------------------------


@pytest.fixture
def paced() -> Iterator[LocalRealtimeServer]:
    """A server that paces its deltas, so that arrivals are apart by at least that."""
    with LocalRealtimeServer(delta_delay=0.02) as srv:
        yield srv


@pytest.fixture
def paced_session(paced: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    client = ds.Client(paced.api_key, base_url=paced.url)
    with client.realtime.connect(model=MODEL) as session:
        yield session


@pytest.fixture
def manual(session: ds.RealtimeSession) -> ds.RealtimeSession:
    session.update_session(ds.SessionUpdate(turn_detection=None))
    return session


class TestManualMode:
    def test_end_of_speech_is_the_commit(
        self, server: LocalRealtimeServer, manual: ds.RealtimeSession
    ) -> None:
        """In manual mode the end of speech is the commit, sent before the request: the
        figure covers the server's delay, and is at least the first audio delay."""
        server.set_reply_delay(0.1)  # each client event waits this long at the server
        try:
            result = manual.respond(speech_like_pcm16(0.5), timeout=30)
        finally:
            server.set_reply_delay(0)
        assert result.first_audio_delay is not None and result.first_audio_delay >= 0.1
        assert result.end_of_speech_to_first_audio is not None
        assert result.end_of_speech_to_first_audio >= result.first_audio_delay
        assert result.first_audible_delay == result.first_audio_delay  # speech from the start
        assert result.playback_start is None  # no speaker

    def test_a_text_turn_has_no_end_of_speech(self, manual: ds.RealtimeSession) -> None:
        """A text-only turn has first audio and text delays, but no end of speech."""
        result = manual.respond(text="Hello", timeout=30)
        assert result.end_of_speech_to_first_audio is None
        assert result.first_text_delay is not None and result.first_audio_delay is not None

    def test_a_text_only_reply_has_no_audio_figures(self, manual: ds.RealtimeSession) -> None:
        """With text output only, the audio figures are None and the repr shows first text."""
        manual.update_session(ds.SessionUpdate(modalities=ds.MODALITIES_TEXT))
        result = manual.respond(text="Hello", timeout=30)
        assert result.first_audio_delay is None and result.first_audible_delay is None
        assert result.end_of_speech_to_first_audio is None
        assert "first text" in repr(result) and "audible" not in repr(result)

    def test_leading_silence_delays_the_first_audible_chunk(
        self, paced: LocalRealtimeServer, paced_session: ds.RealtimeSession
    ) -> None:
        """A reply whose first chunks are silence is audible only from its first loud chunk,
        which arrives (paced by the server) after its first audio."""
        paced_session.update_session(ds.SessionUpdate(turn_detection=None))
        silent = base64.b64encode(bytes(4800)).decode()
        loud = base64.b64encode(tone(0.1)).decode()
        paced.script_response(
            [
                {"type": "response.created"},
                {"type": "response.audio.delta", "delta": silent},
                {"type": "response.audio.delta", "delta": silent},
                {"type": "response.audio.delta", "delta": loud},
                {"type": "response.done"},
            ]
        )
        result = paced_session.respond(text="Hello", timeout=30)
        assert result.first_audio_delay is not None and result.first_audible_delay is not None
        assert result.first_audible_delay > result.first_audio_delay
        assert "first audible" in repr(result)
        assert "first audible" in result._repr_html_()


class TestLeadingSilenceKnob:
    def test_replies_start_with_the_silence_asked_for(self) -> None:
        """LocalRealtimeServer(leading_silence_ms=...) starts each reply's audio with that much
        silence: the first audio is not the first audible audio then."""
        with LocalRealtimeServer(leading_silence_ms=300, delta_delay=0.01) as srv:
            client = ds.Client(srv.api_key, base_url=srv.url)
            with client.realtime.connect(model=MODEL) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                result = session.respond(speech_like_pcm16(0.5), timeout=30)
        silence = 24000 * 300 // 1000 * 2
        assert result.audio[:silence] == bytes(silence)
        assert audible(result.audio[silence : silence + 4800])
        assert result.first_audio_delay is not None and result.first_audible_delay is not None
        assert result.first_audible_delay > result.first_audio_delay
        assert result.end_of_speech_to_first_audio is not None

    def test_negative_silence_is_refused(self) -> None:
        """A negative leading_silence_ms is a ValueError, before anything starts."""
        with pytest.raises(ValueError, match="leading_silence_ms"):
            LocalRealtimeServer(leading_silence_ms=-1)


class TestServerVad:
    def test_end_of_speech_is_speech_stopped(self, paced_session: ds.RealtimeSession) -> None:
        """Under server VAD the end of speech is speech_stopped's arrival: after the handle
        started following, so shorter than the first audio delay, and before any audio."""
        stopped: list[float] = []
        paced_session.on(ds.InputAudioBufferSpeechStopped, lambda e: stopped.append(1.0))
        result = paced_session.respond(speech_like_pcm16(1.0), timeout=30)
        assert stopped, "the local server's VAD ended the turn"
        assert result.first_audio_delay is not None
        assert result.end_of_speech_to_first_audio is not None
        assert 0 <= result.end_of_speech_to_first_audio <= result.first_audio_delay

    def test_metrics_cover_replies_no_handle_follows(
        self, paced_session: ds.RealtimeSession
    ) -> None:
        """A server-VAD reply nobody follows is in session.metrics, its delays counted from the
        end of speech."""
        done = threading.Event()
        paced_session.on(ds.ResponseDone, lambda e: done.set())
        for start in range(0, 32000 * 2, 3200):
            paced_session.append_audio(speech_like_pcm16(2.0)[start : start + 3200])
        paced_session.append_audio(bytes(32000))  # 1 s of silence ends the turn
        assert done.wait(30)
        metrics = paced_session.metrics
        assert metrics.responses == 1
        assert metrics.end_of_speech_to_first_audio.count == 1
        assert metrics.first_audio_delay.p50 == metrics.end_of_speech_to_first_audio.p50
        assert metrics.total_time.count == 1 and metrics.playback_start.count == 0


def tool_session(server: LocalRealtimeServer) -> ds.RealtimeSession:
    """An Omni 3.5 session (a family that takes tools) with a registered tool."""
    client = ds.Client(server.api_key, base_url=server.url, workspace="ws-test")
    session = client.realtime.connect(model=ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME)

    @session.tool
    def ping() -> str:
        """Ping."""
        return "pong"

    return session


ONE_CALL = [
    {"type": "response.created"},
    {
        "type": "response.done",
        "response": {
            "status": "completed",
            "output": [{"type": "function_call", "call_id": "c0", "name": "ping", "arguments": ""}],
        },
    },
]


def calling_reply(name: str) -> list[dict[str, object]]:
    """A scripted reply that calls the function ``name`` and says nothing."""
    call = {"type": "function_call", "call_id": "c0", "name": name, "arguments": ""}
    return [
        {"type": "response.created"},
        {"type": "response.done", "response": {"status": "completed", "output": [call]}},
    ]


class TestToolTurns:
    @pytest.mark.parametrize("vad", [False, True], ids=["manual", "server_vad"])
    def test_end_of_speech_reaches_the_answer_the_user_hears(
        self, server: LocalRealtimeServer, vad: bool
    ) -> None:
        """In a voice turn whose reply calls a tool, end_of_speech_to_first_audio is measured
        to the follow-up's first audio (it spans the calling reply), and is in the metrics."""
        with tool_session(server) as session:
            if not vad:
                session.update_session(ds.SessionUpdate(turn_detection=None))
            server.script_response(ONE_CALL)
            result = session.respond(speech_like_pcm16(1.0), timeout=30)
            (calling,) = result.tool_rounds
            assert [call.result for call in result.turn_tool_calls] == ["pong"]
            assert calling.end_of_speech_to_first_audio is None  # it made no sound
            assert calling.total_time is not None and result.first_audio_delay is not None
            assert result.end_of_speech_to_first_audio is not None
            # The follow-up was asked for after the calling reply ended, and in manual mode
            # the calling reply's request came after the commit.
            spanned = calling.total_time if not vad else 0.0
            assert result.end_of_speech_to_first_audio >= spanned + result.first_audio_delay
            assert session.metrics.end_of_speech_to_first_audio.count == 1

    def test_a_call_the_program_answers_keeps_the_figure(self, server: LocalRealtimeServer) -> None:
        """A tool declared by hand: the reply to the program's own output is the turn's answer,
        and gets its end_of_speech_to_first_audio."""
        with tool_session(server) as session:
            session.update_session(
                ds.SessionUpdate(turn_detection=None, tools=[ds.FunctionTool(name="by_hand")])
            )
            server.script_response(calling_reply("by_hand"))
            calling = session.respond(speech_like_pcm16(1.0), timeout=30)
            session.send_function_output(calling.output[0].call_id or "", "done")
            answer = session.create_response().wait(timeout=30)
            assert answer.end_of_speech_to_first_audio is not None
            assert calling.total_time is not None
            assert answer.end_of_speech_to_first_audio >= calling.total_time
            assert session.metrics.end_of_speech_to_first_audio.count == 1


TWO_CALLS = [
    {"type": "response.created"},
    {
        "type": "response.done",
        "response": {
            "status": "completed",
            "output": [
                {"type": "function_call", "call_id": f"c{i}", "name": "ping", "arguments": ""}
                for i in range(2)
            ],
        },
    },
]


class TestToolTurnsUnderServerVad:
    def test_two_calls_keep_the_figure_on_the_answer_heard(
        self, server: LocalRealtimeServer
    ) -> None:
        """Under server VAD a reply calling two tools gets one answer per output, the first
        silenced: the answer the user hears still has end_of_speech_to_first_audio."""
        with tool_session(server) as session:
            server.script_response(TWO_CALLS)
            result = session.respond(speech_like_pcm16(1.0), timeout=30)
            assert [call.result for call in result.turn_tool_calls] == ["pong", "pong"]
            assert result.audio_seconds > 0
            assert result.end_of_speech_to_first_audio is not None
            assert result.end_of_speech_to_first_audio >= result.first_audio_delay
            assert session.metrics.end_of_speech_to_first_audio.count == 1

    def test_silenced_answers_are_not_in_the_metrics(self, server: LocalRealtimeServer) -> None:
        """The silenced answer to the first of two outputs is heard by no one, so
        session.metrics counts only the calling reply and the answer heard."""
        with tool_session(server) as session:
            ended = Ended(session)
            server.script_response(TWO_CALLS)
            session.respond(speech_like_pcm16(1.0), timeout=30)
            assert ended.wait(3)  # the calling reply and both answers
            metrics = session.metrics
            assert metrics.responses == 2
            assert metrics.total_time.count == 2 and metrics.first_audio_delay.count == 1
            assert metrics.first_text_delay.count == 1


class Ended:
    """Counts the responses a session's handlers saw end, and waits for a number of them."""

    def __init__(self, session: ds.RealtimeSession) -> None:
        self._count = 0
        # Guards _count; notified by the handler thread at each response.done.
        self._changed = threading.Condition()
        session.on(ds.ResponseDone, self._on_done)

    def _on_done(self, event: ds.ResponseDone) -> None:
        with self._changed:
            self._count += 1
            self._changed.notify_all()

    def wait(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count >= count, timeout=30)


class TestToolTurnsWithoutAnswer:
    """A tool turn that ends with no answer heard leaks its end of speech into no later reply."""

    def then_a_text_turn(self, session: ds.RealtimeSession) -> None:
        after = session.respond(text="Something else.", timeout=30)
        assert after.audio_seconds > 0 and after.first_audio_delay is not None
        assert after.end_of_speech_to_first_audio is None
        assert session.metrics.end_of_speech_to_first_audio.count == 0

    @pytest.mark.parametrize("vad", [False, True], ids=["manual", "server_vad"])
    def test_interrupt_while_the_tool_runs(self, server: LocalRealtimeServer, vad: bool) -> None:
        """interrupt() during the tool of a voice turn: the next text turn has no end of speech."""
        with tool_session(server) as session:
            if not vad:
                session.update_session(ds.SessionUpdate(turn_detection=None))
            running, release = threading.Event(), threading.Event()

            @session.tool
            def slow() -> str:
                """Slow."""
                running.set()
                release.wait(30)
                return "late"

            server.script_response(calling_reply("slow"))
            ended = Ended(session)
            results: list[ds.ResponseResult] = []
            turn = threading.Thread(
                target=lambda: results.append(session.respond(speech_like_pcm16(1.0), timeout=30))
            )
            turn.start()
            try:
                assert running.wait(30)
                session.interrupt()
            finally:
                release.set()
                turn.join(30)
            assert [call.result for call in results[0].turn_tool_calls] == ["late"]
            server.wait_for_received("conversation.item.create", count=1, timeout=30)
            if vad:  # the server's own answer is cancelled: the next turn waits for its end
                server.wait_for_received("response.cancel", timeout=30)
                assert ended.wait(2)  # the calling reply and the cancelled answer
            self.then_a_text_turn(session)

    def test_the_tool_loop_limit_under_server_vad(self, server: LocalRealtimeServer) -> None:
        """A voice turn stopped by the tool loop's limit (the last answer silenced and cancelled):
        the next text turn has no end of speech."""
        from dashscope_sync._core.tool_book import MAX_TOOL_ROUNDS

        with tool_session(server) as session:
            ended = Ended(session)
            for _ in range(MAX_TOOL_ROUNDS):
                server.script_response(ONE_CALL)
            result = session.respond(speech_like_pcm16(1.0), timeout=30)
            assert len(result.turn_tool_calls) == MAX_TOOL_ROUNDS
            server.wait_for_received("response.cancel", timeout=30)
            assert ended.wait(MAX_TOOL_ROUNDS + 1)  # the last, cancelled answer too
            self.then_a_text_turn(session)

    def test_a_call_the_program_leaves_unanswered(self, server: LocalRealtimeServer) -> None:
        """A voice turn whose reply calls a tool declared by hand, never answered: the next
        text turn has no end of speech."""
        with tool_session(server) as session:
            session.update_session(
                ds.SessionUpdate(turn_detection=None, tools=[ds.FunctionTool(name="by_hand")])
            )
            server.script_response(calling_reply("by_hand"))
            calling = session.respond(speech_like_pcm16(1.0), timeout=30)
            assert calling.output[0].name == "by_hand" and calling.tool_calls == ()
            self.then_a_text_turn(session)


class TestMetrics:
    def test_metrics_summarise_every_response(self, manual: ds.RealtimeSession) -> None:
        """session.metrics counts each response once per figure, and its p50/max match the
        results' figures."""
        results = [manual.respond(speech_like_pcm16(0.3), timeout=30) for _ in range(3)]
        metrics = manual.metrics
        assert isinstance(metrics, ds.Metrics) and metrics.responses == 3
        delays = sorted(r.first_audio_delay for r in results if r.first_audio_delay is not None)
        assert metrics.first_audio_delay == ds.LatencySummary(
            count=3,
            p50=delays[1],
            p95=pytest.approx(delays[1] + 0.9 * (delays[2] - delays[1])),
            max=delays[2],
        )
        assert metrics.end_of_speech_to_first_audio.count == 3
        assert metrics.interrupt_to_silence.count == 0
        assert manual.metrics is not metrics  # a fresh snapshot each time

    def test_metrics_are_immutable_snapshots_and_say_so(self, manual: ds.RealtimeSession) -> None:
        """A Metrics snapshot and its summaries are frozen and stay as taken while the session
        goes on, and both classes' docstrings say how threads may share them."""
        manual.respond(text="hi", timeout=30)
        metrics = manual.metrics
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            metrics.responses = 0  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            metrics.total_time.count = 0  # type: ignore[misc]
        manual.respond(text="again", timeout=30)
        assert metrics.responses == metrics.total_time.count == 1
        assert manual.metrics.total_time.count == 2
        for cls in (ds.Metrics, ds.LatencySummary):
            assert "Thread safety: immutable" in (cls.__doc__ or ""), cls.__name__

    def test_metrics_may_be_read_while_replies_stream(
        self, paced_session: ds.RealtimeSession
    ) -> None:
        """Reading metrics from another thread while a reply streams is safe and consistent."""
        paced_session.update_session(ds.SessionUpdate(turn_detection=None))
        handle = paced_session.create_response()
        seen: list[ds.Metrics] = []
        reader = threading.Thread(
            target=lambda: seen.extend(paced_session.metrics for _ in range(50)), name="reader"
        )
        reader.start()
        handle.wait(timeout=30)
        reader.join(30)
        assert len(seen) == 50
        assert all(m.first_audio_delay.count <= m.responses <= 1 for m in seen)


# With a speaker (a virtual real-time device) -----------------------------------------------


@pytest.fixture
def device() -> VirtualOutput:
    return VirtualOutput(24000, latency=0.1)


@pytest.fixture
def speaker(device: VirtualOutput) -> Iterator[ds.Speaker]:
    with ds.Speaker(stream=device, block_ms=50, latency=0.1, jitter_ms=100) as spk:
        yield spk


class TestWithSpeaker:
    def test_playback_start_is_after_the_first_audio(
        self,
        server: LocalRealtimeServer,
        manual: ds.RealtimeSession,
        speaker: ds.Speaker,
        device: VirtualOutput,
    ) -> None:
        """With a speaker attached, playback_start comes after the first audio (the jitter
        buffer fills first) and the session's metrics count it."""
        manual.attach(speaker=speaker)
        handled = threading.Event()
        manual.on(ds.ResponseDone, lambda e: handled.set())
        # Three chunks, each longer than the jitter buffer, instead of the simulated reply's
        # seconds of speech: drain() waits for the device to play it all in real time.
        delta = base64.b64encode(tone(0.15)).decode()
        server.script_response(
            [
                {"type": "response.created"},
                *[{"type": "response.audio.delta", "delta": delta}] * 3,
                {"type": "response.audio.done"},
                {"type": "response.done", "response": {"status": "completed"}},
            ]
        )
        handle = manual.create_response()
        handle.wait(timeout=30)
        assert handled.wait(30)  # the handlers wrote every chunk to the speaker
        assert speaker.drain(timeout=30)
        result = handle.result
        assert result is not None and result.first_audio_delay is not None
        assert result.playback_start is not None
        assert result.first_audio_delay <= result.playback_start <= result.total_time + 30
        assert "playback" in repr(result)
        assert manual.metrics.playback_start.count == 1
        assert device.total() > 0

    def test_interrupt_reports_the_time_to_silence(
        self, paced_session: ds.RealtimeSession, speaker: ds.Speaker, device: VirtualOutput
    ) -> None:
        """interrupt() with a speaker playing reports interrupt_to_silence: within the call,
        no earlier than the device's abort, and counted in the metrics."""
        paced_session.update_session(ds.SessionUpdate(turn_detection=None))
        paced_session.attach(speaker=speaker)
        sounding = threading.Event()
        speaker.notify_playback(lambda at: sounding.set())
        paced_session.append_text("Tell me a long story.")
        paced_session.create_response()
        assert sounding.wait(30)
        called = time.monotonic()
        stopped = paced_session.interrupt()
        returned = time.monotonic()
        assert stopped.interrupt_to_silence is not None
        assert device.aborts and called <= device.aborts[-1] <= returned
        assert 0 <= stopped.interrupt_to_silence <= returned - called
        assert "interrupt_to_silence=" in repr(stopped)
        assert paced_session.metrics.interrupt_to_silence.count == 1

    def test_an_interrupt_of_a_silent_speaker_stops_nothing(
        self,
        server: LocalRealtimeServer,
        manual: ds.RealtimeSession,
        speaker: ds.Speaker,
        device: VirtualOutput,
    ) -> None:
        """interrupt() once the reply has played out names no reply and has no time to silence,
        so the metrics leave it out; one that stops a reply still sounding is counted."""
        manual.attach(speaker=speaker)
        handled = threading.Event()
        manual.on(ds.ResponseDone, lambda e: handled.set())
        delta = base64.b64encode(tone(0.3)).decode()
        server.script_response(
            [
                {"type": "response.created"},
                {"type": "response.audio.delta", "delta": delta},
                {"type": "response.audio.done"},
                {"type": "response.done", "response": {"status": "completed"}},
            ]
        )
        manual.create_response().wait(timeout=30)
        assert handled.wait(30)  # the speaker has every chunk
        assert speaker.drain(timeout=30) and device.total() > 0
        idle = [manual.interrupt() for _ in range(3)]
        nothing = ds.Interruption(response_id=None, played_seconds=None, cancelled=False)
        assert idle == [nothing] * 3
        assert manual.metrics.interrupt_to_silence.count == 0
        sounding = threading.Event()
        speaker.notify_playback(lambda at: sounding.set())
        handle = manual.create_response()  # a simulated reply: seconds of audio
        assert sounding.wait(30)
        stopped = manual.interrupt()
        assert stopped.response_id == handle.id and stopped.interrupt_to_silence is not None
        summary = manual.metrics.interrupt_to_silence
        assert (summary.count, summary.max) == (1, stopped.interrupt_to_silence)

    def test_without_a_speaker_no_time_to_silence(self, manual: ds.RealtimeSession) -> None:
        """interrupt() with no speaker attached has no interrupt_to_silence to report."""
        manual.append_text("Tell me a long story.")
        manual.create_response()
        stopped = manual.interrupt()
        assert stopped.interrupt_to_silence is None
        assert manual.metrics.interrupt_to_silence.count == 0


class TestSpeakerClock:
    def test_an_idle_speaker_is_silent_at_once(self, speaker: ds.Speaker) -> None:
        """interrupt() of a speaker with nothing sounding is silent already; before any
        interrupt, wait_silent() has nothing to report."""
        assert speaker.wait_silent(timeout=0) is None
        before = time.monotonic()
        speaker.interrupt()
        silent = speaker.wait_silent(timeout=5)
        assert silent is not None and silent <= before

    def test_playback_callback_gets_the_sound_time(
        self, speaker: ds.Speaker, device: VirtualOutput
    ) -> None:
        """notify_playback() reports when the next sample written sounds; an interrupt
        forgets a watch whose sample never played."""
        heard: list[float] = []
        arrived = threading.Event()

        def report(at: float) -> None:
            heard.append(at)
            arrived.set()

        speaker.notify_playback(report)
        written = time.monotonic()
        speaker.write(tone(0.3))
        assert arrived.wait(10)
        assert heard[0] >= written
        assert speaker.drain(timeout=10)
        forgotten: list[float] = []
        speaker.write(tone(0.05))  # below the jitter buffer: it waits, unplayed
        speaker.notify_playback(forgotten.append)
        speaker.interrupt()
        speaker.write(tone(0.3))
        assert speaker.drain(timeout=10)
        assert forgotten == [] and len(heard) == 1


class RoomyOutput(VirtualOutput):
    """A real-time virtual device that says how much room it has, as sounddevice's streams
    do, and counts the writes that had to wait for room (blocking the player thread)."""

    def __init__(self) -> None:
        super().__init__(24000, latency=0.1)
        self.blocked = 0

    @property
    def write_available(self) -> int:
        queued = max(0.0, self.total() - self.heard())
        return max(0, int((self.latency - queued) * self.rate))

    def write(self, data: bytes) -> None:
        if len(data) // 2 > self.write_available:
            self.blocked += 1  # the write waits for room: the player thread is held
        super().write(data)


class TestSpeakerWaitsForRoom:
    def test_the_player_never_blocks_in_a_write(self) -> None:
        """Given a stream that says its room, the speaker waits for room where interrupt()
        wakes it, never inside a write: an interrupt is not held by a full device."""
        device = RoomyOutput()
        with ds.Speaker(stream=device, jitter_ms=0) as speaker:
            speaker.write(tone(0.6))
            assert speaker.drain(timeout=10)
            sounding = threading.Event()
            speaker.notify_playback(lambda at: sounding.set())
            speaker.write(tone(2.0))
            assert sounding.wait(10)
            assert not speaker.drain(timeout=0.3)  # the device is full of the tone now
            called = time.monotonic()
            speaker.interrupt()
            silent = speaker.wait_silent(timeout=10)
        assert device.blocked == 0
        assert silent is not None and device.aborts and called <= device.aborts[-1] <= silent
        assert device.heard() < 0.6 + 2.0


class TestSpeechMetrics:
    def test_a_speech_session_summarises_its_speeches(self, client: ds.Client) -> None:
        """SpeechSession.metrics has one first-audio and total time per finished speech, equal
        to the speeches' results; a cancelled speech is left out."""
        with client.speech.connect(
            model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Cherry"
        ) as session:
            assert session.metrics.responses == 0
            results = [session.speak(text).wait(timeout=30) for text in ("Hello.", "Goodbye.")]
            release, pulled = threading.Event(), threading.Event()

            def pieces() -> Iterator[str]:
                pulled.set()
                yield "Never "
                release.wait(30)  # still speaking when it is cancelled
                yield "finished."

            cut = session.speak(pieces())
            assert pulled.wait(30)
            assert cut.cancel()
            release.set()
            assert cut.wait(timeout=30).cancelled
            metrics = session.metrics
        assert metrics.responses == 2
        firsts = sorted(r.first_audio_delay for r in results if r.first_audio_delay is not None)
        assert len(firsts) == 2
        assert metrics.first_audio_delay.p50 == pytest.approx(sum(firsts) / 2)
        assert metrics.first_audio_delay.max == firsts[-1]
        assert metrics.total_time.max == max(r.total_time or 0 for r in results)
        assert metrics.end_of_speech_to_first_audio.count == 0
