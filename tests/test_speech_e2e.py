"""Qwen-TTS-Realtime end to end: the public speech API against the local server over loopback."""

from __future__ import annotations

import threading
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes


class RecordingSpeaker:
    """A speaker (the `SpeakerLike` surface) that keeps what it is given to play."""

    def __init__(self, rate: int = 24000) -> None:
        self.rate = rate
        # Guards `written` and `interrupts` (the handler thread writes, the test reads).
        self.lock = threading.Lock()
        self.written = bytearray()
        self.interrupts = 0
        self.ends = 0
        self.closed = False
        self.playing = False
        self.played_seconds = 0.0

    @property
    def written_seconds(self) -> float:
        with self.lock:
            return len(self.written) / 2 / self.rate

    def write(self, pcm: bytes) -> None:
        with self.lock:
            self.written += pcm

    def mark_end(self) -> None:
        self.ends += 1

    def interrupt(self) -> None:
        with self.lock:
            self.interrupts += 1

    def set_tap(self, tap: Callable[[bytes], None] | None) -> None:
        pass


@pytest.fixture
def tts(client: ds.Client) -> Iterator[ds.SpeechSession]:
    with client.speech.connect(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="Cherry") as session:
        yield session


def _pcm_length(text: str, rate: int = 24000) -> int:
    """The local server's PCM byte count for ``text`` cut into segments (60 ms a character)."""
    from dashscope_sync.testing._tts import synthesize_pcm

    return len(synthesize_pcm(text, sample_rate=rate))


@pytest.fixture
def paced() -> Iterator[ds.Client]:
    """A client of a local server that streams its deltas paced, so parts overlap the calls."""
    with LocalRealtimeServer(delta_delay=0.002, chunk_ms=100) as srv:
        yield ds.Client(srv.api_key, base_url=srv.url)


def test_synthesize_returns_audio_that_follows_the_text(paced: ds.Client, tmp_path: Path) -> None:
    """synthesize(): one call, PCM of every part of the text, every character billed, a WAV."""
    short_text = "Hi there."
    long_text = " ".join([short_text] * 6)
    short = paced.speech.synthesize(short_text, timeout=30)
    long = paced.speech.synthesize(long_text, timeout=30)
    assert short.response_format == "pcm" and short.sample_rate == 24000
    assert short.characters == len(short_text) and long.characters == len(long_text)
    assert len(short.audio) == _pcm_length(short_text)
    assert len(long.audio) == _pcm_length(long_text)
    path = long.save(tmp_path / "long.wav")
    with wave.open(str(path)) as wav:
        assert wav.getnframes() == len(long.audio) // 2


@pytest.mark.parametrize("mode", ["server_commit", "commit"])
def test_a_speech_of_several_sentences_gets_every_part_and_the_next_only_its_own(
    paced: ds.Client, mode: str
) -> None:
    """Several sentences, cut by the server or not, then a second speech: the first gets all
    its parts and characters, the second exactly its own."""
    first_text = "One two three four. Five six seven eight. Nine ten tail"
    second_text = "Bee bee."
    with paced.speech.connect(mode=mode) as tts:
        first = tts.speak(first_text)
        second = tts.speak(second_text)
        one, two = first.wait(30), second.wait(30)
    assert one.characters == len(first_text) and len(one.audio) == _pcm_length(first_text)
    assert two.characters == len(second_text) and len(two.audio) == _pcm_length(second_text)


def test_connect_returns_with_the_accepted_configuration(client: ds.Client) -> None:
    """connect() returns after session.updated: info echoes the voice, mode and rate sent."""
    with client.speech.connect(
        ds.SpeechConfig(voice="Serena", mode="commit", sample_rate=16000)
    ) as session:
        assert session.info.voice == "Serena"
        assert session.info.mode == "commit"
        assert session.info.sample_rate == 16000
        result = session.speak("Sixteen kilohertz.").wait(30)
        assert result.sample_rate == 16000 and result.audio


def test_connect_takes_the_model_as_its_first_argument(client: ds.Client) -> None:
    """client.speech.connect("model", voice=...) opens that model, as the issue writes it."""
    with client.speech.connect(ds.MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME, voice="Ethan") as tts:
        assert tts.model == ds.MODEL_QWEN3_TTS_INSTRUCT_FLASH_REALTIME
        assert tts.info.voice == "Ethan"


def test_a_refused_configuration_fails_connect(client: ds.Client) -> None:
    """A voice the server does not know: connect() raises the APIError that refused it."""
    with pytest.raises(ds.APIError):
        client.speech.connect(model=ds.MODEL_QWEN3_TTS_FLASH_REALTIME, voice="NoSuchVoice")


def test_streamed_pieces_get_audio_before_the_last_piece(tts: ds.SpeechSession) -> None:
    """speak(iterable): the first sentence's audio arrives before the last piece is given."""
    heard = threading.Event()
    tts.on(ds.ResponseAudioDelta, lambda _: heard.set())
    early: list[bool] = []

    def pieces() -> Iterator[str]:
        yield "The first sentence is complete. "
        early.append(heard.wait(30))
        yield "And then the tail"

    speech = tts.speak(pieces())
    result = speech.wait(30)
    assert early == [True]
    assert result.text == "The first sentence is complete. And then the tail"
    assert result.audio and result.first_audio_delay is not None


def test_speeches_in_a_row_each_get_their_own_audio(tts: ds.SpeechSession) -> None:
    """Two speeches, one after the other without waiting: each gets the audio of its own text."""
    first = tts.speak("One.")
    second = tts.speak("A much longer second sentence, to be sure.")
    one, two = first.wait(30), second.wait(30)
    assert 0 < len(one.audio) < len(two.audio)
    assert one.characters < two.characters


@pytest.mark.parametrize("server_closes", [True, False])
def test_finish_returns_after_the_audio_still_due_and_ends_cleanly(server_closes: bool) -> None:
    """finish(): session.finished after the last audio, then a clean end, whether the server
    closes after it (the client-events page) or leaves that to the client (the interaction page)."""
    with LocalRealtimeServer(tts_close_after_finish=server_closes) as server:
        client = ds.Client(server.api_key, base_url=server.url)
        with client.speech.connect(mode="commit") as tts:
            speech = tts.speak("The tail of the session.")
            finished = tts.finish(timeout=30)
            assert isinstance(finished, ds.SessionFinished)
            assert speech.done and speech.wait(0).audio
            assert tts.closed and tts.close_code == 1000


def test_attached_speaker_plays_every_speech_and_cancel_stops_it(paced: ds.Client) -> None:
    """attach(speaker=): the speech's PCM reaches the speaker; cancel() interrupts it (barge-in)
    and not one byte of it is written after, though the server goes on sending its parts."""
    speaker = RecordingSpeaker()
    with paced.speech.connect() as tts:
        tts.attach(speaker=speaker)
        # Handlers run in arrival order: once response.done is handled, so is every delta.
        done = threading.Event()
        tts.on(ds.ResponseDone, lambda _: done.set())
        result = tts.speak("Played through the speaker.").wait(30)
        assert done.wait(30)
        with speaker.lock:
            assert bytes(speaker.written) == result.audio
        long = tts.speak("A long text to interrupt. " * 20)
        next(long.iter_audio(timeout=30))
        assert long.cancel()
        with speaker.lock:
            at_cancel = len(speaker.written)
        assert speaker.interrupts == 1
        assert long.wait(30).cancelled
        # session.finished comes after every part the server still had to send.
        assert isinstance(tts.finish(timeout=60), ds.SessionFinished)
        with speaker.lock:
            assert len(speaker.written) == at_cancel


def test_attach_refuses_a_compressed_format(client: ds.Client) -> None:
    """A speaker plays PCM: attach() on a WAV session is a ConfigError."""
    with (
        client.speech.connect(response_format="wav") as session,
        pytest.raises(ds.ConfigError, match="PCM"),
    ):
        session.attach(speaker=RecordingSpeaker())


def test_realtime_connect_refuses_tts_before_connecting(server: LocalRealtimeServer) -> None:
    """The local server sees no connection for a TTS model given to client.realtime.connect()."""
    client = ds.Client(server.api_key, base_url=server.url)
    with pytest.raises(ds.ConfigError, match=r"client\.speech\.connect"):
        client.realtime.connect(model=ds.MODEL_QWEN_TTS_REALTIME)


def test_a_real_speaker_plays_the_speech_and_cancel_cuts_it_short(paced: ds.Client) -> None:
    """With a `Speaker` (on a simulated real-time device) attached, a speech is heard whole,
    and cancelling a long one stops the sound at once: far less than it is long is heard,
    though the server goes on sending its parts."""
    from tests.audio_fakes import VirtualOutput, wait_until

    device = VirtualOutput(24000, latency=0.05)
    with ds.Speaker(stream=device) as speaker, paced.speech.connect() as tts:
        tts.attach(speaker=speaker)
        # Handlers run in arrival order: once response.done is handled, every delta was written.
        done = threading.Event()
        tts.on(ds.ResponseDone, lambda _: done.set())
        short = tts.speak("Hi.").wait(30)
        assert done.wait(30)
        assert speaker.drain(30)
        # The player thread hands the device its last block as the queue runs dry.
        assert wait_until(lambda: device.total() >= short.duration - 0.001, timeout=10)
        assert device.total() == pytest.approx(short.duration, abs=0.01)
        before = device.total()
        long = tts.speak("A long text to cut short. " * 10)
        next(long.iter_audio(timeout=30))
        assert long.cancel()
        # session.finished comes after every part the server still had to send.
        assert isinstance(tts.finish(timeout=60), ds.SessionFinished)
        speaker.drain(30)
        assert device.total() - before < 2.0  # the speech is over 10 s long
