"""session.record(): frames.jsonl line by line, audio=False, conversation.wav's channels, lifecycle."""

from __future__ import annotations

import base64
import errno
import io
import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync._audio.mixdown import Channel, write_stereo_wav
from dashscope_sync._cli import main as cli
from dashscope_sync._conversation import record_writer
from dashscope_sync._conversation.record_lines import in_lines
from dashscope_sync._conversation.record_writer import RecordWriter
from dashscope_sync._wire.codec import decode
from dashscope_sync._wire.payloads import blank_payloads, blank_payloads_in, client_frame_type
from dashscope_sync.testing import LocalRealtimeServer, spoken_pcm16

from ._ear import Ear
from .audio_fakes import VirtualOutput, wait_until
from .conftest import need
from .test_tools import two_calls

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
#: A key no frame or header of the recording may contain.
FAKE_KEY = "sk-recorder-FAKE-KEY-7f3a9c"


def read_lines(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the frame lines of a recording (each line must be JSON on its own)."""
    text = (folder / "frames.jsonl").read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    return lines[0], lines[1:]


def read_wav(path: Path) -> tuple[int, list[int], list[int]]:
    """A stereo PCM16 WAV's rate and its left and right samples."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        rate = wav.getframerate()
        data = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return rate, list(samples[0::2]), list(samples[1::2])


def tone(seconds: float, rate: int = 16000, level: int = 12000) -> bytes:
    """A 440 Hz tone, mono PCM16."""
    count = int(seconds * rate)
    return struct.pack(
        f"<{count}h", *(int(level * math.sin(2 * math.pi * 440 * n / rate)) for n in range(count))
    )


def b64(size: int) -> str:
    """Base64 of ``size`` bytes of audio-like data."""
    return base64.b64encode(bytes(range(256)) * (size // 256) + bytes(size % 256)).decode()


def audible(samples: list[int], threshold: int = 200) -> list[int]:
    """Indices of the samples louder than ``threshold``."""
    return [i for i, s in enumerate(samples) if abs(s) > threshold]


@pytest.fixture
def keyed() -> Iterator[LocalRealtimeServer]:
    """A local server whose API key is recognisable in any file."""
    with LocalRealtimeServer(api_key=FAKE_KEY) as srv:
        yield srv


@pytest.fixture
def manual(keyed: LocalRealtimeServer) -> Iterator[ds.RealtimeSession]:
    """A manual-mode conversation on the keyed server."""
    client = ds.Client(keyed.api_key, base_url=keyed.url)
    with client.realtime.connect(model=MODEL) as session:
        session.update_session(ds.SessionUpdate(turn_detection=None))
        yield session


# Pure: payload blanking and the mixdown ------------------------------------------------------


def reactor_arg(shared: bool) -> str:
    """The Client argument that puts a child process's sessions on a reactor of its own
    in shared mode (the test's reactor is in this process)."""
    return ", reactor=ds.Reactor()" if shared else ""


class TestPayloads:
    def test_blanks_audio_and_counts_decoded_bytes(self) -> None:
        """A delta's base64 is emptied in place and its decoded length noted, for every padding."""
        for size in (4800, 4801, 4802):
            b64 = base64.b64encode(bytes(size)).decode()
            frame = json.dumps(
                {"type": "response.audio.delta", "response_id": "r", "delta": b64},
                separators=(",", ":"),
            ).encode()
            blanked = blank_payloads(frame, "response.audio.delta")
            assert blanked is not None
            text, omitted = blanked
            assert omitted == {"delta": size}
            assert json.loads(text) == {
                "type": "response.audio.delta",
                "response_id": "r",
                "delta": "",
            }

    def test_other_shapes_fall_back_to_the_parsed_frame(self) -> None:
        """A spaced key or an escaped value is left to the parsed path, which blanks it too."""
        frame = b'{"type": "response.audio.delta", "delta": "AAAA"}'
        assert blank_payloads(frame, "response.audio.delta") is None
        assert blank_payloads(b'{"type":"x","delta":"AA\\/A"}', "response.audio.delta") is None
        obj = json.loads(frame)
        assert blank_payloads_in(obj) == {"delta": 3} and obj["delta"] == ""
        assert blank_payloads(b'{"type":"response.done"}', "response.done") == (
            b'{"type":"response.done"}',
            {},
        )

    def test_client_frame_type(self) -> None:
        """The type of a frame the library wrote is read without parsing; other shapes give None."""
        assert client_frame_type(b'{"event_id":"e1","type":"input_audio_buffer.append"}') == (
            "input_audio_buffer.append"
        )
        assert client_frame_type(b'{"type":"x","event_id":"e1"}') is None


class TestLines:
    def test_a_round_formats_each_frame_as_alone(self) -> None:
        """in_lines writes every shape of received frame as one JSON line, payloads blanked or kept."""
        frames = [
            {"type": "response.audio.delta", "response_id": "r", "delta": b64(4800)},
            {"type": "response.audio_transcript.delta", "response_id": "r", "delta": "Hi"},
            {"type": "response.audio.delta", "response_id": "r", "delta": b64(4801)},
            {"type": "response.audio.delta", "delta": b64(4802), "response_id": "r"},
            # A value that quotes the key: never taken for the field itself.
            {"type": "response.audio.delta", "delta": b64(3), "note": 'x"delta":"AAAA'},
            {"type": "response.done", "response": {"id": "r", "status": "completed"}},
        ]
        datas = [json.dumps(f, separators=(",", ":")).encode() for f in frames]
        datas.insert(2, b'{\n"type": "test.spread",\r\n"n": 1}')  # JSON over lines
        datas.insert(4, b"not json {")
        events = [decode(data) for data in datas]
        ats = [0.5 * i for i in range(len(datas))]
        for audio in (False, True):
            text, deltas = in_lines(ats, datas, events, audio=audio, omitted={})
            assert text.endswith(b"\n") and b"\r" not in text
            lines = [json.loads(line) for line in text.splitlines()]
            assert [line["t"] for line in lines] == ats
            assert [lines[i]["frame"]["type"] for i in deltas] == ["response.audio.delta"] * 4
            assert lines[2]["frame"] == {"type": "test.spread", "n": 1}
            assert lines[4]["invalid"]["length"] == 10 and "frame" not in lines[4]
            kept = [
                line["frame"]
                for line in lines
                if "frame" in line and line["frame"] != lines[2]["frame"]
            ]
            if audio:
                assert kept == frames and all("omitted" not in line for line in lines)
                continue
            sizes = [4800, 4801, 4802, 3]
            assert [lines[i]["omitted"] for i in deltas] == [{"delta": n} for n in sizes]
            assert kept[4]["note"] == 'x"delta":"AAAA'
            blanked = [
                {**f, "delta": ""} if f["type"] == "response.audio.delta" else f for f in frames
            ]
            assert kept == blanked

    def test_offsets_start_at_zero_and_never_go_back(self, tmp_path: Path) -> None:
        """The opening comes first at t 0; a frame handed on late by another thread keeps t rising."""
        created = b'{"type":"session.created","session":{"id":"s"}}'
        opening = [(time.monotonic() - 5, "in", created, decode(created))]
        writer = RecordWriter(
            tmp_path,
            audio=False,
            header={},
            input_rate=lambda: None,
            output_rate=lambda: None,
            wav_rate=24000,
            opening=opening,
        )
        writer.start()
        now = time.monotonic()
        for t, kind, text in [
            (now + 0.2, "in", b'{"type":"test.a"}'),
            (now + 0.1, "out", '{"type":"test.b"}'),  # sent meanwhile, handed on after
            (now + 0.3, "in", b'{"type":"test.c"}'),
        ]:
            writer.put((t, kind, text, decode(text) if kind == "in" else None))
        writer.close()
        _, lines = read_lines(tmp_path)
        assert [line["frame"]["type"] for line in lines] == [
            "session.created",
            "test.a",
            "test.b",
            "test.c",
        ]
        offsets = [line["t"] for line in lines]
        assert offsets[0] == 0 and offsets[1] == offsets[2] < offsets[3]


class TestMixdown:
    def test_chunks_stay_contiguous_and_pauses_are_silence(self, tmp_path: Path) -> None:
        """A chunk goes at max(its time, the channel's end); a later one leaves silence before it."""
        left, right = Channel(100, tmp_path), Channel(100, tmp_path)
        try:
            one = struct.pack("<10h", *([1000] * 10))
            left.add(0.0, one, 100)
            left.add(0.05, one, 100)  # streamed ahead: right after the first
            left.add(0.5, one, 100)  # after a pause
            right.add(0.1, struct.pack("<5h", *([-7] * 5)), 100)
            right.cut(0.12)
            frames = write_stereo_wav(tmp_path / "out.wav", left, right)
        finally:
            left.close()
            right.close()
        rate, lsamples, rsamples = read_wav(tmp_path / "out.wav")
        assert rate == 100 and frames == 60
        assert lsamples[:20] == [1000] * 20 and lsamples[20:50] == [0] * 30
        assert lsamples[50:60] == [1000] * 10
        assert rsamples[10:12] == [-7, -7] and rsamples[12:] == [0] * 48


# Over a socket: frames.jsonl ------------------------------------------------------------------


class TestFrames:
    def test_format_line_by_line(
        self, keyed: LocalRealtimeServer, manual: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A header, then every frame in and out in wire order with rising offsets; no key."""
        folder = tmp_path / "rec"
        seen: list[str] = []
        manual.on("*", lambda event: seen.append(event.type))
        with manual.record(folder) as recorder:
            assert isinstance(recorder, ds.Recorder) and folder.is_dir()
            manual.append_audio(tone(0.3))
            manual.commit_audio()
            result = manual.create_response().wait(timeout=10)
            # A frame of the server's own, after the reply: the last one recorded.
            keyed.send({"type": "test.marker"})
            marker = manual.wait_for(ds.UnknownEvent, timeout=10)
        assert marker.type == "test.marker"
        header, lines = read_lines(folder)
        assert list(header) == ["recording", "model", "family", "session_id", "started"]
        assert header["recording"] == 1 and header["model"] == MODEL
        assert header["family"] == "omni" and header["session_id"] == manual.id
        assert header["started"].endswith("+00:00")
        for line in lines:
            assert set(line) == {"t", "dir", "frame"} and line["dir"] in ("in", "out")
        offsets = [line["t"] for line in lines]
        assert offsets == sorted(offsets) and offsets[0] >= 0
        out = [line["frame"] for line in lines if line["dir"] == "out"]
        connection = keyed.connections[0]
        # Every client frame since record(), in the order the server read them.
        assert out == connection.received[-len(out) :]
        assert [f["type"] for f in out] == [
            "input_audio_buffer.append",
            "input_audio_buffer.commit",
            "response.create",
        ]
        inbound = [line["frame"]["type"] for line in lines if line["dir"] == "in"]
        # First the session's opening (session.created, at 0: connect sent nothing),
        # then the frames received after record(), in order (the answer to the
        # update sent after connect, before record(), is not recorded).
        assert inbound[0] == "session.created" and lines[0]["t"] == 0
        assert inbound[1:] == seen[-len(inbound) + 1 :] and "session.updated" not in inbound
        assert inbound[-1] == "test.marker"
        # The reply's audio, byte for byte, in the deltas.
        audio = b"".join(
            base64.b64decode(line["frame"]["delta"])
            for line in lines
            if line["frame"]["type"] == "response.audio.delta"
        )
        assert audio == result.audio
        # The request's order: the response.create went out before response.created came in.
        types = [(line["dir"], line["frame"]["type"]) for line in lines]
        assert types.index(("out", "response.create")) < types.index(("in", "response.created"))
        for path in folder.iterdir():
            data = path.read_bytes()
            assert FAKE_KEY.encode() not in data and b"Authorization" not in data
            assert b"api_key" not in data and keyed.url.encode() not in data

    def test_audio_false_keeps_lengths_not_audio(
        self, manual: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """audio=False empties each audio payload, notes its decoded length, and writes no WAV."""
        folder = tmp_path / "rec"
        with manual.record(folder, audio=False):
            manual.append_audio(tone(0.3))
            manual.commit_audio()
            result = manual.create_response().wait(timeout=10)
        _, lines = read_lines(folder)
        append = next(
            line for line in lines if line["frame"]["type"] == "input_audio_buffer.append"
        )
        assert append["frame"]["audio"] == "" and append["omitted"] == {"audio": 9600}
        deltas = [line for line in lines if line["frame"]["type"] == "response.audio.delta"]
        assert deltas and all(line["frame"]["delta"] == "" for line in deltas)
        assert sum(line["omitted"]["delta"] for line in deltas) == len(result.audio)
        others = [line for line in lines if line not in deltas and line is not append]
        assert others and all("omitted" not in line for line in others)
        # No WAV; the conversation's transcript is text, kept whatever ``audio`` says.
        assert sorted(p.name for p in folder.iterdir()) == ["frames.jsonl", "transcript.json"]

    def test_audio_of_any_shape_is_blanked(
        self, keyed: LocalRealtimeServer, manual: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A delta spaced out, with its audio not last, is blanked too; flush() writes it now."""
        pcm = bytes(range(200)) * 3
        delta = base64.b64encode(pcm).decode()
        folder = tmp_path / "rec"
        with manual.record(folder, audio=False) as recorder:
            keyed.send_text(
                f'{{"type": "response.audio.delta", "delta": "{delta}", "response_id": "r1",'
                ' "item_id": "i1", "output_index": 0, "content_index": 0}'
            )
            keyed.send({"type": "test.marker"})
            manual.wait_for(ds.UnknownEvent, timeout=10)
            recorder.flush(timeout=10)
            _, lines = read_lines(folder)  # complete while the recording runs
            assert recorder.path == folder and not recorder.closed
        (line,) = [line for line in lines if line["frame"]["type"] == "response.audio.delta"]
        assert line["frame"]["delta"] == "" and line["omitted"] == {"delta": 600}
        assert line["frame"]["response_id"] == "r1"
        assert delta.encode() not in (folder / "frames.jsonl").read_bytes()
        with pytest.raises(ds.DashScopeError):
            recorder.flush()  # closed

    def test_invalid_frames_get_a_note(
        self, keyed: LocalRealtimeServer, manual: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A binary frame and text that is not JSON become "invalid" lines; the file stays JSONL."""
        folder = tmp_path / "rec"
        with manual.record(folder):
            keyed.send_binary(b"\x00\x01\x02")
            keyed.send_text("not json {")
            keyed.send_text('{\n"type": "test.spread",\n"n": 1}')
            keyed.send({"type": "test.marker"})
            manual.wait_for(ds.UnknownEvent, timeout=10)
        _, lines = read_lines(folder)
        invalid = [line["invalid"] for line in lines if "invalid" in line]
        assert [entry["length"] for entry in invalid] == [3, 10]
        spread = next(line for line in lines if line.get("frame", {}).get("type") == "test.spread")
        assert spread["frame"] == {"type": "test.spread", "n": 1}


# Over a socket: conversation.wav -----------------------------------------------------------


class TestConversationWav:
    def test_user_left_reply_right_on_one_clock(
        self, manual: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """The appended tone is on the left where it was sent; the reply, whole, on the right."""
        need("soxr", "the user's 16 kHz audio is resampled to 24 kHz")
        folder = tmp_path / "rec"
        with manual.record(folder):
            manual.append_audio(tone(0.5))
            manual.commit_audio()
            result = manual.create_response().wait(timeout=10)
        _, lines = read_lines(folder)
        rate, left, right = read_wav(folder / "conversation.wav")
        assert rate == 24000
        sent = next(line["t"] for line in lines if line["dir"] == "out")
        heard = audible(left)
        # The tone starts where it was appended (the resampler's lag is a few ms) and lasts 0.5 s.
        assert abs(heard[0] / rate - sent) < 0.02
        assert abs((heard[-1] - heard[0]) / rate - 0.5) < 0.02
        first = next(line["t"] for line in lines if line["frame"]["type"] == "response.audio.delta")
        sounding = [i for i, sample in enumerate(right) if sample]
        # The reply starts where its first delta arrived (frames.jsonl's t is rounded)...
        assert abs(sounding[0] / rate - first) < 0.02
        # ...and is all there, in order: a delta that arrives after the audio before it
        # has played out (a loaded machine) starts where it arrives, after silence.
        reply = struct.unpack(f"<{len(result.audio) // 2}h", result.audio)
        kept = [right[i] for i in sounding]
        whole = kept == [sample for sample in reply if sample]
        assert whole, f"{len(kept)} sounding samples on the right, the reply has {len(reply)}"

    def test_interrupt_without_speaker_cuts_the_reply(self, tmp_path: Path) -> None:
        """Without a speaker, the right channel stops at the interrupt: later audio is not kept."""
        with LocalRealtimeServer(delta_delay=0.02) as srv:
            client = ds.Client(srv.api_key, base_url=srv.url)
            with client.realtime.connect(model=MODEL) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                folder = tmp_path / "rec"
                with session.record(folder):
                    session.append_text("Tell me a long story.")
                    response = session.create_response()
                    got = 0
                    with pytest.raises(ds.ResponseCancelledError):
                        for chunk in response.iter_audio(timeout=10):
                            got += len(chunk)
                            if got >= 24000:  # 0.5 s received, 2.5 s of it streamed ahead
                                stopped = session.interrupt()
        assert stopped.cancelled
        _, lines = read_lines(folder)
        cancel = next(line["t"] for line in lines if line["frame"]["type"] == "response.cancel")
        first = next(line["t"] for line in lines if line["frame"]["type"] == "response.audio.delta")
        received = sum(
            len(base64.b64decode(line["frame"]["delta"]))
            for line in lines
            if line["frame"]["type"] == "response.audio.delta"
        )
        rate, _, right = read_wav(folder / "conversation.wav")
        kept = len(audible(right, 0))
        # Cut at the interrupt: what a real-time player would have played by then.
        assert kept <= round((cancel - first) * rate) + 2400
        assert kept < received // 2

    def test_silenced_tool_answer_stays_off_the_recording(self, tmp_path: Path) -> None:
        """Without a speaker, a two-call tool turn under server VAD records only the answer heard."""
        with LocalRealtimeServer() as srv:
            client = ds.Client(srv.api_key, base_url=srv.url, workspace="ws-test")
            with client.realtime.connect(model=ds.MODEL_QWEN3_5_OMNI_FLASH_REALTIME) as session:
                session.tool(lambda: "one", name="first")
                session.tool(lambda: "two", name="second")
                folder = tmp_path / "rec"
                with session.record(folder):
                    srv.script_response(two_calls(("first", "{}"), ("second", "{}")))
                    # Its response.done was read, so every delta before it is on the tap.
                    result = session.respond(text="go", timeout=20)
        _, lines = read_lines(folder)
        deltas = [
            line["frame"] for line in lines if line["frame"].get("type") == "response.audio.delta"
        ]
        # The server streamed two answers' audio: the silenced one, then the one heard.
        assert {d["response_id"] for d in deltas} - {result.response_id}
        _, _, right = read_wav(folder / "conversation.wav")
        channel = struct.pack(f"<{len(right)}h", *right)
        # The heard answer is on the right channel whole (where its clock put it:
        # test_user_left_reply_right_on_one_clock checks the placement), and
        # nothing else is: not a sample of the silenced answer.
        assert result.audio
        start = channel.find(result.audio)
        assert start >= 0 and start % 2 == 0
        assert not any(channel[:start]) and not any(channel[start + len(result.audio) :])

    def test_interrupted_reply_stops_where_playback_stopped(self, tmp_path: Path) -> None:
        """With a speaker, the right channel is what it played: cut where the interrupt stopped it."""
        with LocalRealtimeServer(delta_delay=0.02) as srv:
            client = ds.Client(srv.api_key, base_url=srv.url)
            # A deep device buffer: 0.4 s given to the device is never heard.
            device = VirtualOutput(latency=0.4)
            speaker = ds.Speaker(stream=device, jitter_ms=0)
            with speaker, client.realtime.connect(model=MODEL) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                folder = tmp_path / "rec"
                recorder = session.record(folder)
                session.attach(speaker=speaker)
                session.append_text("Tell me a long story.")
                response = session.create_response()
                assert wait_until(lambda: device.heard() >= 0.6, timeout=10)
                stopped = session.interrupt()
                with pytest.raises(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                heard = device.heard()
                session.detach()
                recorder.close()
        assert stopped.played_seconds is not None
        rate, _, right = read_wav(folder / "conversation.wav")
        played = audible(right, 0)
        recorded = (played[-1] - played[0] + 1) / rate
        # What the device played (within a block, 50 ms), not what it was given.
        assert abs(recorded - heard) < 0.12, (recorded, heard)
        assert recorded < 2.0  # not the whole reply the server streamed ahead

    def test_interrupted_reply_on_the_loopback_device(
        self, audio_device: None, tmp_path: Path
    ) -> None:
        """On a real device, the right channel holds what the speaker played of a cut reply."""
        with LocalRealtimeServer(delta_delay=0.02) as srv:
            client = ds.Client(srv.api_key, base_url=srv.url)
            with ds.Speaker() as speaker, client.realtime.connect(model=MODEL) as session:
                session.update_session(ds.SessionUpdate(turn_detection=None))
                folder = tmp_path / "rec"
                session.attach(speaker=speaker)
                recorder = session.record(folder)
                session.append_text("Tell me a long story.")
                response = session.create_response()
                assert wait_until(lambda: speaker.played_seconds >= 0.6, timeout=10)
                stopped = session.interrupt()
                with pytest.raises(ds.ResponseCancelledError):
                    response.wait(timeout=10)
                recorder.close()
        assert stopped.played_seconds is not None
        rate, _, right = read_wav(folder / "conversation.wav")
        played = audible(right, 0)
        recorded = (played[-1] - played[0] + 1) / rate
        print(f"loopback: recorded {recorded:.3f} s, heard {stopped.played_seconds:.3f} s")
        # What the speaker says was heard, within a block (measured here: within 10 ms;
        # without the cut at the interrupt, the device's buffer more: about 0.1 s).
        assert abs(recorded - stopped.played_seconds) < speaker.block_ms / 1000 + 0.05
        assert recorded < 2.0


# Lifecycle ---------------------------------------------------------------------------------


class TestLifecycle:
    def test_session_close_closes_the_recorder(self, client: ds.Client, tmp_path: Path) -> None:
        """Closing the session completes the files and joins the recorder's thread."""
        with client.realtime.connect(model=MODEL) as session:
            recorder = session.record(tmp_path / "rec", audio=False)
            session.append_text("hi")
            assert not recorder.closed
        assert recorder.closed
        assert not [t for t in threading.enumerate() if t.name == "dashscope_sync-recorder"]
        _, lines = read_lines(tmp_path / "rec")
        out = [line["frame"]["type"] for line in lines if line["dir"] == "out"]
        assert out == ["conversation.item.create"]
        recorder.close()  # idempotent

    def test_one_recording_at_a_time_and_none_after_close(
        self, session: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A second record() while one runs is a UsageError; after close() nothing more is written."""
        first = session.record(tmp_path / "one", audio=False)
        with pytest.raises(ds.UsageError):
            session.record(tmp_path / "two")
        session.append_text("recorded")
        first.close()
        session.append_text("not recorded")
        with session.record(tmp_path / "two", audio=False):
            session.append_text("recorded again")
        texts = [
            line["frame"]["item"]["content"][0]["text"]
            for folder in ("one", "two")
            for line in read_lines(tmp_path / folder)[1]
            if line["dir"] == "out"
        ]
        assert texts == ["recorded", "recorded again"]

    def test_a_recording_never_closed_is_completed_at_exit(
        self, tmp_path: Path, shared_mode: bool
    ) -> None:
        """A program that ends without closing its session still leaves complete files."""
        need("soxr", "the WAV's left channel is resampled")
        code = textwrap.dedent(
            f"""
            import dashscope_sync as ds
            from dashscope_sync.testing import LocalRealtimeServer
            server = LocalRealtimeServer().start()
            client = ds.Client(server.api_key, base_url=server.url{reactor_arg(shared_mode)})
            session = client.realtime.connect(model={MODEL!r})
            session.update_session(ds.SessionUpdate(turn_detection=None))
            session.record({str(tmp_path / "rec")!r})
            session.append_audio(bytes(3200))
            session.append_text("left open")
            session.create_response().wait(timeout=10)
            server.close()
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        _, lines = read_lines(tmp_path / "rec")
        assert any(line["frame"]["type"] == "response.done" for line in lines)
        rate, _, right = read_wav(tmp_path / "rec" / "conversation.wav")
        assert rate == 24000 and audible(right, 0)

    def test_close_on_a_stuck_disk_returns_within_close_timeout(
        self,
        keyed: LocalRealtimeServer,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A disk that stalls a write does not hang session.close(): the recorder says so."""
        stalled, release = threading.Event(), threading.Event()
        real = record_writer.write_buffers

        def stuck(fd: int, buffers: list[bytes]) -> None:
            stalled.set()  # as on an NFS hang: the write returns once the disk does
            release.wait()
            real(fd, buffers)

        client = ds.Client(keyed.api_key, base_url=keyed.url)
        session = client.realtime.connect(ds.RealtimeConfig(model=MODEL, close_timeout=0.5))
        try:
            recorder = session.record(tmp_path / "rec", audio=False)
            monkeypatch.setattr(record_writer, "write_buffers", stuck)
            session.append_text("hi")
            assert stalled.wait(10)
            closer = threading.Thread(target=session.close, daemon=True)
            closer.start()
            closer.join(20)  # generous: the bound is 0.5 s per step
            assert not closer.is_alive(), "close() waited for a stuck disk"
            assert isinstance(recorder.error, ds.DashScopeTimeout)
            assert recorder.error.timeout == 0.5
            assert "may stay incomplete" in caplog.text
            with pytest.raises(ds.DashScopeTimeout):
                recorder.close(0)
        finally:
            release.set()
            session.close()
        for thread in threading.enumerate():
            if thread.name == "dashscope_sync-recorder":
                thread.join(10)  # released: it completes the files after all
        out = [line["frame"] for line in read_lines(tmp_path / "rec")[1] if line["dir"] == "out"]
        assert out[-1]["item"]["content"][0]["text"] == "hi"

    def test_a_stuck_disk_does_not_hang_the_exit(self, tmp_path: Path, shared_mode: bool) -> None:
        """The exit hook waits close_timeout for a recording whose disk stalls, then exits."""
        code = textwrap.dedent(
            f"""
            import threading
            import dashscope_sync as ds
            from dashscope_sync._conversation import record_writer
            from dashscope_sync.testing import LocalRealtimeServer
            stalled = threading.Event()
            def stuck(fd, buffers):
                stalled.set()
                threading.Event().wait()  # never returns
            server = LocalRealtimeServer().start()
            client = ds.Client(server.api_key, base_url=server.url{reactor_arg(shared_mode)})
            session = client.realtime.connect(ds.RealtimeConfig(model={MODEL!r}, close_timeout=0.5))
            session.record({str(tmp_path / "rec")!r}, audio=False)
            record_writer.write_buffers = stuck
            session.append_text("left open")
            assert stalled.wait(10)
            server.close()
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert "may stay incomplete" in proc.stderr

    def test_bad_paths_and_a_closed_session(self, client: ds.Client, tmp_path: Path) -> None:
        """A file where the folder goes, a bad audio flag and a closed session are typed errors."""
        (tmp_path / "file").write_text("x")
        with client.realtime.connect(model=MODEL) as session:
            with pytest.raises(ds.ConfigError):
                session.record(tmp_path / "file")
            with pytest.raises(ds.ConfigTypeError):
                session.record(tmp_path / "rec", audio="yes")  # type: ignore[arg-type]
            with pytest.raises(ds.ConfigTypeError):
                session.record(3)  # type: ignore[arg-type]
        with pytest.raises(ds.SessionClosedError):
            session.record(tmp_path / "late")
        assert not (tmp_path / "rec").exists()

    def test_a_folder_where_frames_jsonl_goes_is_a_config_error(
        self, session: ds.RealtimeSession, tmp_path: Path
    ) -> None:
        """A folder named frames.jsonl in the target is a ConfigError, and recording goes on working."""
        (tmp_path / "rec" / "frames.jsonl").mkdir(parents=True)
        with pytest.raises(ds.ConfigError, match="cannot record into") as caught:
            session.record(tmp_path / "rec", audio=False)
        assert isinstance(caught.value.__cause__, IsADirectoryError)
        assert not [t for t in threading.enumerate() if t.name == "dashscope_sync-recorder"]
        with session.record(tmp_path / "good", audio=False):
            session.append_text("recorded")
        # The server's answer may or may not be in before the recorder closes: the
        # frame sent must be.
        sent = [line for line in read_lines(tmp_path / "good")[1] if line["dir"] == "out"]
        assert [line["frame"]["type"] for line in sent] == ["conversation.item.create"]

    @pytest.mark.parametrize("failing", ["header", "second channel"])
    def test_a_failure_while_opening_closes_what_was_opened(
        self,
        session: ds.RealtimeSession,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        failing: str,
    ) -> None:
        """A full disk at the header or at the WAV's second channel is a ConfigError, no file left open."""
        full = OSError(errno.ENOSPC, "No space left on device")
        if failing == "header":

            def no_space(fd: int, buffers: list[bytes]) -> None:
                raise full

            monkeypatch.setattr(record_writer, "write_buffers", no_space)
        else:
            need("soxr", "recording audio resamples the user's")
            made: list[Channel] = []

            def channel(rate: int, directory: Path) -> Channel:
                if made:
                    raise full
                made.append(Channel(rate, directory))
                return made[0]

            monkeypatch.setattr(record_writer, "Channel", channel)
        folder = tmp_path / "rec"
        with pytest.raises(ds.ConfigError, match="No space left") as caught:
            session.record(folder, audio=True)
        assert caught.value.__cause__ is full
        assert not _open_under(folder)
        assert not [t for t in threading.enumerate() if t.name == "dashscope_sync-recorder"]

    def test_speech_and_transcription_sessions_record(
        self, client: ds.Client, tmp_path: Path
    ) -> None:
        """A TTS session records its speech on the right; an ASR session its audio on the left."""
        need("soxr", "the ASR's 16 kHz audio is resampled to 24 kHz")
        model = ds.MODEL_QWEN3_TTS_FLASH_REALTIME
        with (
            client.speech.connect(model=model, voice="Cherry") as tts,
            tts.record(tmp_path / "tts"),
        ):
            result = tts.speak("Hello there.").wait(timeout=10)
        header, lines = read_lines(tmp_path / "tts")
        assert header["family"] == "qwen_tts"
        assert {line["dir"] for line in lines} == {"in", "out"}
        _, left, right = read_wav(tmp_path / "tts" / "conversation.wav")
        assert not any(left) and len(audible(right, 0)) > 0
        assert struct.pack(f"<{len(right)}h", *right).strip(b"\x00") == result.audio.strip(b"\x00")
        with (
            client.transcription.connect(turn_detection=None, language="en", timeout=10) as asr,
            asr.record(tmp_path / "asr"),
        ):
            asr.append_audio(spoken_pcm16("hello"))
            asr.commit_audio()
            next(t for t in asr.transcripts(timeout=10) if t.final)
        header, lines = read_lines(tmp_path / "asr")
        assert header["family"] == "qwen_asr"
        _, left, right = read_wav(tmp_path / "asr" / "conversation.wav")
        assert audible(left) and not any(right)


class TestTalkRecord:
    def test_talk_records_the_turn(
        self, keyed: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk --record DIR writes the turn's frames (never the key) and its two-channel WAV."""
        need("soxr", "the WAV's left channel is resampled")
        monkeypatch.setenv("DASHSCOPE_API_KEY", FAKE_KEY)
        wav = tmp_path / "in.wav"
        _write_wav(wav, tone(0.4))
        out, err = io.StringIO(), io.StringIO()
        folder = tmp_path / "call"
        code = cli.main(
            ["talk", str(wav), "--url", keyed.url, "--fast", "--record", str(folder),
             "--output", str(tmp_path / "reply.wav")],
            out=out, err=err,
        )  # fmt: skip
        assert code == 0, err.getvalue()
        assert f"recording to {folder}" in err.getvalue()
        header, lines = read_lines(folder)
        assert header["model"] == ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
        out_types = [line["frame"]["type"] for line in lines if line["dir"] == "out"]
        assert "input_audio_buffer.append" in out_types and out_types[-1] == "response.create"
        assert any(line["frame"]["type"] == "response.done" for line in lines)
        _, left, right = read_wav(folder / "conversation.wav")
        assert audible(left) and audible(right, 0)
        for path in folder.iterdir():
            assert FAKE_KEY.encode() not in path.read_bytes()

    @pytest.mark.threads_only(
        reason="the command runs in a subprocess, which no test reactor reaches"
    )
    def test_talk_mic_records_the_live_conversation(
        self, audio_device: None, tmp_path: Path
    ) -> None:
        """talk --mic --record on the loopback: the user's speech on the left, the reply played
        on the right, and the files complete after Ctrl-C."""
        import signal

        from dashscope_sync.testing import resample_pcm16, speech_like_pcm16

        from ._proc import INTERRUPTIBLE

        need("soxr", "the WAV's left channel is resampled")
        folder = tmp_path / "call"
        with LocalRealtimeServer(server_vad=True) as server:
            env = {**os.environ, ds.API_KEY_ENV: server.api_key or ""}
            argv = ["talk", "--mic", "--echo", "gate", "--url", server.url, "--record", str(folder)]
            proc = subprocess.Popen(
                [sys.executable, "-m", "dashscope_sync", *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                **INTERRUPTIBLE,
            )
            lines: list[str] = []
            seen = threading.Condition()

            def pump() -> None:
                for line in proc.stdout:  # type: ignore[union-attr]
                    with seen:
                        lines.append(line)
                        seen.notify_all()

            def wait_line(text: str, timeout: float) -> bool:
                with seen:
                    return seen.wait_for(lambda: any(text in line for line in lines), timeout)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            with Ear() as ear:
                try:
                    assert wait_line("talk now", 20), lines
                    assert any(f"recording to {folder}" in line for line in lines)
                    question = resample_pcm16(speech_like_pcm16(1.0), 16000, 24000)
                    with ds.Speaker() as user:
                        user.write(question)
                        assert user.drain(timeout=5)
                    assert wait_line("[completed]", 20) or wait_line("[cancelled]", 1), lines
                    # The reply plays after [completed] (later under load): Ctrl-C before it
                    # sounds would leave nothing to record.
                    assert ear.sounded_since(ear.mark(), 20), "talk played no reply"
                finally:
                    proc.send_signal(signal.SIGINT)
                    code = proc.wait(15)
                    reader.join(5)
                    if proc.stdout is not None:
                        proc.stdout.close()
        assert code == 0, "".join(lines)
        _, frames = read_lines(folder)
        types = [(line["dir"], line["frame"]["type"]) for line in frames]
        assert ("out", "input_audio_buffer.append") in types and ("in", "response.done") in types
        _, left, right = read_wav(folder / "conversation.wav")
        assert len(audible(left)) > 16000 * 0.5  # the question, heard by the microphone
        assert audible(right, 0)  # the reply, as the speaker played it

    def test_record_into_a_file_is_refused_before_connecting(
        self, keyed: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """talk --record naming a file exits with the usage code, and no connection is made."""
        monkeypatch.setenv("DASHSCOPE_API_KEY", FAKE_KEY)
        (tmp_path / "taken").write_text("x")
        wav = _write_wav(tmp_path / "in.wav", tone(0.1))
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(
            ["talk", str(wav), "--url", keyed.url, "--record", str(tmp_path / "taken")],
            out=out, err=err,
        )  # fmt: skip
        assert code == cli.EXIT_USAGE
        assert "--record" in err.getvalue() and not keyed.connections


def _open_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process holds open (Linux's /proc)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd to see the open files")
    links = []
    for fd in fds.iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue  # the descriptor listing the folder itself, closed since
    return [link for link in links if link.startswith(str(folder))]


def _write_wav(path: Path, pcm: bytes, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path
