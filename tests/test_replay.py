"""``LocalRealtimeServer.replay``: a recorded session answers a client, which must follow it.

Three layers: reading recordings (pure), a raw WebSocket client against
hand-written recordings (matching, divergence, silence, ids, pacing), and the
library's `RealtimeSession` replaying a conversation captured live from the
simulator through a recording relay (``tests/_capture.py``).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

import dashscope_sync as ds
from dashscope_sync.testing import (
    LocalRealtimeServer,
    Recording,
    Replay,
    ReplayDivergence,
    speech_like_pcm16,
    spoken_pcm16,
)

from ._capture import CaptureRelay

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
HEADER = {
    "recording": 1,
    "model": MODEL,
    "family": "omni",
    "session_id": "sess_recorded",
    "started": "2026-12-05T09:00:00+00:00",
}


def line(t: float, direction: str, type: str, **fields: Any) -> dict[str, Any]:
    """One recorded frame line; ``omitted`` goes beside the frame, the rest into it."""
    omitted = fields.pop("omitted", None)
    entry: dict[str, Any] = {"t": t, "dir": direction, "frame": {"type": type, **fields}}
    if omitted is not None:
        entry["omitted"] = omitted
    return entry


def created(t: float = 0.0) -> dict[str, Any]:
    """The recorded ``session.created``."""
    session = {"id": "sess_recorded", "object": "realtime.session", "model": MODEL}
    return line(t, "in", "session.created", event_id="event_s0", session=session)


#: A short script: the client asks for a response and the server answers it.
SCRIPT = [
    created(),
    line(0.10, "out", "response.create", event_id="event_c1", response={}),
    line(0.12, "in", "response.created", event_id="event_s1", response={"id": "resp_1"}),
    line(
        0.14,
        "in",
        "response.done",
        event_id="event_s2",
        response={"id": "resp_1", "status": "completed", "output": []},
    ),
]


def write(directory: Path, lines: list[dict[str, Any]], header: dict[str, Any] = HEADER) -> Path:
    """Write ``frames.jsonl`` in ``directory``; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "frames.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in [header, *lines]), encoding="utf-8")
    return path


class Raw:
    """A raw websocket-client peer of the server, one JSON frame at a time."""

    def __init__(self, server: LocalRealtimeServer, model: str = MODEL) -> None:
        self.ws = websocket.create_connection(
            server.model_url(model), header=[f"Authorization: Bearer {server.api_key}"], timeout=10
        )

    def recv(self) -> dict[str, Any]:
        """The next frame, decoded."""
        frame: dict[str, Any] = json.loads(self.ws.recv())
        return frame

    def send(self, type: str, event_id: str = "event_mine", **fields: Any) -> None:
        """Send a client event."""
        self.ws.send(json.dumps({"event_id": event_id, "type": type, **fields}))

    def close_code(self) -> int | None:
        """Read until the server's close frame; its code (None if none came)."""
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
            while opcode != websocket.ABNF.OPCODE_CLOSE:
                opcode, data = self.ws.recv_data(control_frame=True)
        finally:  # a test that failed here must not leak the socket into the next one
            self.ws.close()
            self.ws.shutdown()  # close() skips this once the close handshake is done
        return int.from_bytes(data[:2], "big") if len(data) >= 2 else None


@pytest.fixture
def peer(server: LocalRealtimeServer) -> Iterator[Callable[..., Raw]]:
    """Opens raw peers of the server (``peer()`` or ``peer(model)``), closing them all at the end."""
    opened: list[Raw] = []

    def open_one(model: str = MODEL) -> Raw:
        opened.append(Raw(server, model))
        return opened[-1]

    yield open_one
    for one in opened:
        one.ws.close()
        one.ws.shutdown()


@pytest.fixture
def replayed(server: LocalRealtimeServer, tmp_path: Path) -> Iterator[Replay]:
    """The server replaying SCRIPT as fast as possible."""
    yield server.replay(write(tmp_path, SCRIPT), speed=None)


# Reading recordings -------------------------------------------------------------------


class TestRecording:
    """Recording.load reads the recorder's format and refuses anything else by line."""

    def test_directory_file_and_lines_read_alike(self, tmp_path: Path) -> None:
        """A directory, its frames.jsonl, JSON lines and decoded objects give the same frames."""
        path = write(tmp_path, SCRIPT)
        lines = path.read_text().splitlines()
        loaded = [
            Recording.load(tmp_path),
            Recording.load(path),
            Recording.load(lines),
            Recording.load([json.loads(x) for x in lines]),
        ]
        assert {len(r) for r in loaded} == {4}
        assert {tuple((f.dir, f.type, f.t) for f in r.frames) for r in loaded} == {
            tuple((x["dir"], x["frame"]["type"], x["t"]) for x in SCRIPT)
        }
        first = loaded[0]
        assert (first.model, first.family, first.session_id) == (MODEL, "omni", "sess_recorded")
        assert first.frames[1].line == 3 and first.frames[1].index == 1

    @pytest.mark.parametrize(
        ("header", "match"),
        [
            ({**HEADER, "recording": 2}, '"recording": 1'),
            ({**HEADER, "recording": True}, '"recording": 1'),
            ({**HEADER, "model": ""}, "'model' must be a non-empty string"),
            ({**HEADER, "family": "klingon"}, "family 'klingon' is not one of"),
            ({**HEADER, "started": "yesterday"}, "not an ISO 8601 time"),
        ],
    )
    def test_bad_header(self, tmp_path: Path, header: dict[str, Any], match: str) -> None:
        """A header out of the format is a ConfigError naming line 1 and the field."""
        with pytest.raises(ds.ConfigError, match=match) as info:
            Recording.load(write(tmp_path, SCRIPT, header))
        assert "line 1 (the header)" in str(info.value)

    @pytest.mark.parametrize(
        ("bad", "match"),
        [
            (line(-1.0, "in", "x"), "'t' must be a number of seconds >= 0"),
            ({"t": math.inf, "dir": "in", "frame": {"type": "x"}}, "'t' must be"),
            (line(1.0, "sideways", "x"), "'dir' must be"),
            ({"t": 1.0, "dir": "in", "frame": {"delta": ""}}, "string 'type'"),
            (line(1.0, "in", "response.audio.delta", delta="AAAA", omitted={"delta": 3}), "not an"),
            (
                line(1.0, "in", "response.audio.delta", delta="", omitted={"delta": -3}),
                "byte count",
            ),
            (line(1.0, "in", "response.audio.delta", omitted={"delta": 3}), "not an empty string"),
            (line(0.01, "in", "response.done"), "goes back in time"),
        ],
    )
    def test_bad_frame_line(self, tmp_path: Path, bad: dict[str, Any], match: str) -> None:
        """A frame line out of the format is a ConfigError naming its line (here line 6)."""
        with pytest.raises(ds.ConfigError, match=match) as info:
            Recording.load(write(tmp_path, [*SCRIPT, bad]))
        assert "line 6" in str(info.value)

    def test_not_json(self, tmp_path: Path) -> None:
        """A line that is not JSON is named by its number."""
        path = write(tmp_path, SCRIPT)
        path.write_text(path.read_text() + "{not json\n")
        with pytest.raises(ds.ConfigError, match="line 6: not JSON"):
            Recording.load(path)

    def test_missing_empty_and_wrong_type(self, tmp_path: Path) -> None:
        """A missing file, an empty one and a source of the wrong type are typed errors."""
        with pytest.raises(ds.ConfigError, match="cannot read the recording"):
            Recording.load(tmp_path / "nowhere")
        with pytest.raises(ds.ConfigError, match="empty"):
            Recording.load([])
        with pytest.raises(ds.ConfigTypeError, match="got int"):
            Recording.load(7)
        with pytest.raises(ds.ConfigTypeError, match="line 1: expected a JSON string or object"):
            Recording.load([3])


class TestReplayArguments:
    """replay() checks its arguments before it changes anything."""

    @pytest.mark.parametrize(
        ("speed", "error"),
        [
            (0, ds.ConfigError),
            (-1.0, ds.ConfigError),
            (math.nan, ds.ConfigError),
            ("fast", ds.ConfigTypeError),
            (True, ds.ConfigTypeError),
        ],
    )
    def test_bad_speed(
        self, server: LocalRealtimeServer, tmp_path: Path, speed: Any, error: type
    ) -> None:
        """A speed that is not a number > 0 is refused, and the server stays a simulator."""
        with pytest.raises(error, match="speed"):
            server.replay(write(tmp_path, SCRIPT), speed=speed)
        with ds.Client(server.api_key, base_url=server.url).realtime.connect(
            model=MODEL
        ) as session:
            assert session.id != "sess_recorded"

    def test_infinite_speed_is_as_fast_as_possible(
        self, server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """speed=inf means no pacing, like None."""
        assert server.replay(write(tmp_path, SCRIPT), speed=math.inf).speed is None
        assert server.replay(write(tmp_path, SCRIPT), speed=2).speed == 2.0


# A raw client against hand-written recordings --------------------------------------


class TestFollowing:
    """A client that sends what was recorded gets the recorded frames."""

    def test_following_client_gets_the_recording(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """The recorded frames come in order, ids as recorded; the replay completes."""
        raw = peer()
        assert raw.recv() == SCRIPT[0]["frame"]
        raw.send("response.create", event_id="event_other_id", response={})
        assert [raw.recv()["type"], raw.recv()["type"]] == ["response.created", "response.done"]
        raw.ws.close()
        assert replayed.wait(10) is None
        assert (replayed.runs, replayed.completed, replayed.done) == (1, 1, True)
        assert server.received[-1]["event_id"] == "event_other_id"

    def test_every_connection_gets_the_whole_recording(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """A second connection replays from the start; stop_replay brings the simulator back."""
        for _ in range(2):
            raw = peer()
            assert raw.recv()["session"]["id"] == "sess_recorded"
            raw.send("response.create", response={})
            raw.recv(), raw.recv()
            raw.ws.close()
            replayed.wait(10)
        assert (replayed.runs, replayed.completed, replayed.error) == (2, 2, None)
        server.stop_replay()
        assert peer().recv()["session"]["id"] != "sess_recorded"

    def test_client_ids_are_rewritten(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A recorded error naming the recorded client event names the client's own event instead."""
        error = {"type": "invalid_request_error", "message": "no", "event_id": "event_c1"}
        item = {"id": "item_rec", "type": "message", "role": "user", "content": []}
        script = [
            created(),
            line(0.1, "out", "conversation.item.create", event_id="event_c1", item=item),
            line(0.2, "in", "conversation.item.created", item={**item}),
            line(0.3, "in", "error", event_id="event_s9", error=error),
        ]
        replay = server.replay(write(tmp_path, script), speed=None)
        raw = peer()
        raw.recv()
        raw.send(
            "conversation.item.create", event_id="event_live", item={**item, "id": "item_live"}
        )
        assert raw.recv()["item"]["id"] == "item_live"
        got = raw.recv()
        assert (got["event_id"], got["error"]["event_id"]) == ("event_s9", "event_live")
        raw.ws.close()
        assert replay.wait(10) is None

    def test_recording_without_session_created_gets_one(
        self, server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A recording begun after the handshake still lets the library connect: a minimal session.created comes first."""
        replay = server.replay(write(tmp_path, SCRIPT[1:]), speed=None)
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=MODEL) as session:
            assert session.id == "sess_recorded"
            assert session.create_response().wait(timeout=10).status == "completed"
        assert replay.wait(10) is None

    def test_omitted_audio_is_silence_of_the_recorded_length(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A delta recorded without its audio arrives as that many zero bytes, base64."""
        script = [
            created(),
            line(0.1, "in", "response.audio.delta", delta="", omitted={"delta": 4800}),
            line(0.2, "out", "input_audio_buffer.append", audio="", omitted={"audio": 3200}),
        ]
        replay = server.replay(write(tmp_path, script), speed=None)
        raw = peer()
        raw.recv()
        assert base64.b64decode(raw.recv()["delta"]) == bytes(4800)
        raw.send("input_audio_buffer.append", audio=base64.b64encode(bytes(10)).decode())
        raw.ws.close()
        assert replay.wait(10) is None

    def test_recorded_gaps_are_kept_scaled(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A 1 s recorded gap takes at least 1 s at speed 1 and at least 0.25 s at speed 4."""
        script = [created(), line(1.0, "in", "response.done", event_id="event_s1")]
        path = write(tmp_path, script)
        for speed, at_least in [(1.0, 1.0), (4.0, 0.25)]:
            replay = server.replay(path, speed=speed)
            raw = peer()
            raw.recv()
            start = time.monotonic()
            raw.recv()
            assert time.monotonic() - start >= at_least * 0.9
            raw.ws.close()
            assert replay.wait(10) is None

    def test_gap_counts_from_the_clients_request(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A reply recorded 0.5 s after a request comes 0.5 s after the client's request, not before."""
        script = [
            created(),
            line(0.1, "out", "response.create", response={}),
            line(0.6, "in", "response.created", event_id="event_s1"),
        ]
        replay = server.replay(write(tmp_path, script), speed=1.0)
        raw = peer()
        raw.recv()
        start = time.monotonic()
        raw.send("response.create", response={})
        raw.recv()
        assert time.monotonic() - start >= 0.45
        raw.ws.close()
        assert replay.wait(10) is None


class TestDiverging:
    """A client that leaves the recording gets an error naming the first frame that differs."""

    def test_wrong_type(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """Another client event type: an error event echoing its id, a close with 1008, the record."""
        raw = peer()
        raw.recv()
        raw.send("response.cancel", event_id="event_wrong")
        error = raw.recv()
        assert error["type"] == "error"
        assert error["error"]["code"] == "replay_diverged"
        assert error["error"]["event_id"] == "event_wrong"
        message = error["error"]["message"]
        assert "frame 1 (line 3 of" in message
        assert "expected the client's 'response.create', got 'response.cancel'" in message
        assert raw.close_code() == 1008
        divergence = replayed.wait(10)
        assert divergence == ReplayDivergence(
            index=1, line=3, expected="response.create", got="response.cancel", message=message
        )
        assert replayed.completed == 0

    def test_extra_frame(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """A client frame after the recording's last one diverges past that frame."""
        raw = peer()
        raw.recv()
        raw.send("response.create", response={})
        raw.recv(), raw.recv()
        raw.send("input_audio_buffer.clear")
        error = raw.recv()["error"]
        assert "expected no client frame" not in error["message"]
        assert (
            "the recording has no more client frames, got 'input_audio_buffer.clear'"
            in (error["message"])
        )
        assert raw.close_code() == 1008
        divergence = replayed.wait(10)
        assert divergence is not None
        assert (divergence.index, divergence.expected, divergence.got) == (
            2,
            None,
            "input_audio_buffer.clear",
        )

    def test_not_json(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """A frame that is not JSON diverges too."""
        raw = peer()
        raw.recv()
        raw.ws.send("hello")
        assert "got '<not JSON>'" in raw.recv()["error"]["message"]
        # Answering the server's close ends the run now, not after its 5 s close_timeout.
        assert raw.close_code() == 1008
        divergence = replayed.wait(10)
        assert divergence is not None and divergence.got == "<not JSON>"

    def test_early_close_before_a_client_frame(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """Closing where the recording has a client frame names that frame."""
        raw = peer()
        raw.recv()
        raw.ws.close()
        divergence = replayed.wait(10)
        assert divergence is not None
        assert (divergence.index, divergence.expected, divergence.got) == (
            1,
            "response.create",
            None,
        )
        assert "got the connection closed (1000)" in divergence.message

    def test_early_close_before_a_server_frame(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """Closing while the recording still has server frames to send names the next one."""
        script = [created(), line(5.0, "in", "response.done")]
        replay = server.replay(write(tmp_path, script), speed=1.0)
        raw = peer()
        raw.recv()
        raw.ws.close()
        divergence = replay.wait(10)
        assert divergence is not None
        assert (divergence.index, divergence.expected) == (1, None)
        assert "the recording still sends 'response.done' there" in divergence.message

    def test_other_model(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """A client of another model diverges at once, before session.created."""
        raw = peer(ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS)
        error = raw.recv()["error"]
        assert "the recording is of model 'qwen3-omni-flash-realtime'" in error["message"]
        assert raw.close_code() == 1008
        divergence = replayed.wait(10)
        assert divergence is not None and divergence.index is None

    def test_server_closing_ends_the_run(self, peer: Callable[..., Raw], tmp_path: Path) -> None:
        """A server closed during a long recorded gap closes at once (1001), and the run diverged."""
        script = [created(), line(60.0, "in", "response.done")]
        # The peer reads the close only once the server is gone: a short close_timeout
        # spares waiting 5 s for the reply it cannot send yet.
        with LocalRealtimeServer(close_timeout=0.2) as server:
            replay = server.replay(write(tmp_path, script), speed=1.0)
            raw = Raw(server)
            raw.recv()
        assert raw.close_code() == 1001
        divergence = replay.wait(10)
        assert divergence is not None
        assert "got the server closed the connection (1001)" in divergence.message

    def test_wait_checks_its_timeout(self, replayed: Replay) -> None:
        """A negative or non-numeric timeout is a ConfigError, as everywhere in the library."""
        with pytest.raises(ds.ConfigError, match="timeout"):
            replayed.wait(-1)
        with pytest.raises(ds.ConfigError, match="timeout"):
            replayed.wait("soon")  # type: ignore[arg-type]

    def test_wait_times_out_saying_where(
        self, peer: Callable[..., Raw], server: LocalRealtimeServer, replayed: Replay
    ) -> None:
        """wait() that runs out says which frame the replay waits for."""
        raw = peer()
        raw.recv()
        with pytest.raises(
            ds.DashScopeTimeout, match=r"waiting for the client's 'response\.create'"
        ):
            replayed.wait(0.2)
        raw.ws.close()
        replayed.wait(10)


# The library's session replaying a captured conversation ----------------------------


def converse(url: str, api_key: str | None) -> tuple[list[tuple[float, ds.ServerEvent]], list[Any]]:
    """A program under test: a text turn and a voice turn in manual mode; its events and results."""
    events: list[tuple[float, ds.ServerEvent]] = []
    with ds.Client(api_key or "any", base_url=url).realtime.connect(model=MODEL) as session:
        session.on("*", lambda event: events.append((time.monotonic(), event)))
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        results = [
            session.respond(text="What is on the menu?", timeout=30),
            session.respond(speech_like_pcm16(0.5), timeout=30),
        ]
    return events, results


def capture(tmp_path: Path, *, audio: bool = True, delta_delay: float = 0.0) -> tuple[Path, Any]:
    """Run the program against the simulator through the recording relay."""
    with (
        LocalRealtimeServer(delta_delay=delta_delay) as upstream,
        CaptureRelay(upstream, tmp_path / "call", audio=audio) as relay,
    ):
        events, results = converse(relay.url, upstream.api_key)
        path = relay.wait_written()
    return path, (events, results)


class TestReplayingACapturedConversation:
    """The library, replayed a conversation it had with the simulator, sees the same events."""

    def test_same_events_and_results(self, server: LocalRealtimeServer, tmp_path: Path) -> None:
        """Every event (type and payload) and both results come back as captured, at once."""
        path, (live, live_results) = capture(tmp_path, delta_delay=0.005)
        replay = server.replay(path.parent, speed=None)
        events, results = converse(server.url, server.api_key)
        assert replay.wait(10) is None
        assert [event for _, event in events] == [event for _, event in live]
        assert [(r.text, r.audio, r.status) for r in results] == [
            (r.text, r.audio, r.status) for r in live_results
        ]
        live_span = live[-1][0] - live[0][0]
        replayed_span = events[-1][0] - events[0][0]
        # Generous: the recorded pacing (over 100 deltas 5 ms apart) is not kept.
        assert replayed_span < live_span

    def test_recorded_pacing(self, server: LocalRealtimeServer, tmp_path: Path) -> None:
        """At speed 1 a reply streams no faster than recorded (half of it as a generous bound)."""
        path, (live, _) = capture(tmp_path, delta_delay=0.005)
        replay = server.replay(path, speed=1.0)
        events, _ = converse(server.url, server.api_key)
        assert replay.wait(10) is None

        def first_reply_span(seen: list[tuple[float, ds.ServerEvent]]) -> float:
            times = [t for t, e in seen if isinstance(e, (ds.ResponseCreated, ds.ResponseDone))]
            return times[1] - times[0]

        assert first_reply_span(events) >= first_reply_span(live) / 2

    def test_audio_left_out_comes_back_as_silence(
        self, server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """Recorded without audio, the reply audio comes back as silence of the same length."""
        path, (_, live_results) = capture(tmp_path, audio=False)
        lines = [json.loads(x) for x in path.read_text().splitlines()[1:]]
        assert any("omitted" in x for x in lines if x["dir"] == "out")
        replay = server.replay(path, speed=None)
        _, results = converse(server.url, server.api_key)
        assert replay.wait(10) is None
        for live, replayed in zip(live_results, results, strict=True):
            assert len(replayed.audio) == len(live.audio) > 0
            assert replayed.audio == bytes(len(live.audio))
            assert replayed.text == live.text

    def test_a_program_that_diverges_hears_why(
        self, server: LocalRealtimeServer, tmp_path: Path
    ) -> None:
        """A program that sends audio where the recording has a text item gets the error, and so does the handle."""
        path, _ = capture(tmp_path)
        replay = server.replay(path, speed=None)
        errors: list[ds.ErrorEvent] = []
        with ds.Client(server.api_key, base_url=server.url).realtime.connect(
            model=MODEL
        ) as session:
            session.on(ds.ErrorEvent, errors.append)
            session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
            with pytest.raises(ds.DashScopeError):
                session.respond(speech_like_pcm16(0.5), timeout=30)
        divergence = replay.wait(10)
        assert divergence is not None
        assert (divergence.expected, divergence.got) == (
            "conversation.item.create",
            "input_audio_buffer.append",
        )
        assert [e.error.code for e in errors] == ["replay_diverged"]
        assert errors[0].error.message == divergence.message


def audio_turn(url: str, api_key: str) -> Any:
    """A Qwen-Audio text turn in manual mode."""
    model = ds.MODEL_QWEN_AUDIO_3_0_REALTIME_PLUS
    with ds.Client(api_key, base_url=url).realtime.connect(model=model) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None), timeout=10)
        return session.respond(text="Hi", timeout=30)


def synthesize(url: str, api_key: str) -> Any:
    """A Qwen-TTS synthesis of two sentences."""
    client = ds.Client(api_key, base_url=url)
    return client.speech.synthesize("Hello there. How are you?", model=ds.TTS_MODELS[0])


def transcribe(url: str, api_key: str) -> Any:
    """A Qwen-ASR transcription of audio whose words are known."""
    client = ds.Client(api_key, base_url=url)
    return client.transcription.transcribe(spoken_pcm16("replay this please"))


@pytest.mark.parametrize("program", [audio_turn, synthesize, transcribe])
def test_other_families_replay_too(
    server: LocalRealtimeServer, tmp_path: Path, program: Callable[[str, str], Any]
) -> None:
    """Qwen-Audio, Qwen-TTS and Qwen-ASR programs captured live get the same results replayed."""
    with LocalRealtimeServer() as upstream, CaptureRelay(upstream, tmp_path) as relay:
        live = program(relay.url, upstream.api_key or "")
        path = relay.wait_written()
    replay = server.replay(path, speed=None)
    replayed = program(server.url, server.api_key or "")
    assert replay.wait(10) is None
    assert replayed.text == live.text
    assert getattr(replayed, "audio", None) == getattr(live, "audio", None)
