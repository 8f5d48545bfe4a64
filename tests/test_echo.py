"""echo="aec": WebRTC AEC3 removes the speaker's sound from the microphone's, and spares the user's voice."""

from __future__ import annotations

import sys

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer, resample_pcm16, speech_like_pcm16

from .audio_fakes import VirtualInput, VirtualOutput, wait_until
from .conftest import need

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

np = need("numpy")
need("pywebrtc_audio")


def db(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(10 * np.log10(np.mean(x**2) + 1e-9))


def run_canceller(far24: bytes, near16: bytes) -> bytes:
    """Feed 100 ms of far end then 100 ms of microphone, in turn, as the threads would."""
    from dashscope_sync._audio.echo import EchoCanceller

    aec = EchoCanceller(24000)
    out = b""
    for i in range(0, len(near16), 3200):
        aec.far(far24[i * 3 // 2 : (i + 3200) * 3 // 2])
        out += aec.near(near16[i : i + 3200])
    return out


class TestEchoCanceller:
    def test_removes_the_echo(self) -> None:
        """A 100 ms delayed, -6 dB echo of the speaker is reduced by more than 20 dB once settled."""
        far16 = speech_like_pcm16(6.0)
        far24 = resample_pcm16(far16, 16000, 24000)
        x = np.frombuffer(far16, dtype="<i2")
        echo = np.concatenate([np.zeros(1600, "<i2"), (x[:-1600] // 2).astype("<i2")]).tobytes()
        out = run_canceller(far24, echo)
        settled = slice(3 * 32000, None)
        reduction = db(echo[settled]) - db(out[settled])
        print(f"aec echo reduction: {reduction:.1f} dB")
        assert reduction > 20

    def test_spares_the_users_voice(self) -> None:
        """The user's voice with the speaker quiet loses less than 3 dB."""
        near = speech_like_pcm16(3.0)
        out = run_canceller(bytes(len(near) * 3 // 2), near)
        loss = db(near[32000:]) - db(out[32000:])
        print(f"aec near-end attenuation: {loss:.2f} dB")
        assert loss < 3

    def test_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without pywebrtc-audio, echo="aec" raises ConfigError naming the [aec] extra."""
        monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)
        with LocalRealtimeServer() as server:
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect() as session:
                mic = ds.Microphone(stream=VirtualInput)
                with pytest.raises(ds.ConfigError, match=r"dashscope-sync\[aec\]"):
                    session.attach(speaker=ds.Speaker(), microphone=mic, echo="aec")

    def test_attach_wires_speaker_and_microphone(self) -> None:
        """attach(echo="aec") taps the speaker and filters the microphone before sending."""
        inputs: list[VirtualInput] = []
        mic = ds.Microphone(stream=lambda cb: inputs.append(VirtualInput(cb)) or inputs[-1])
        with (
            LocalRealtimeServer() as server,
            ds.Speaker(stream=VirtualOutput()) as speaker,
            mic,
        ):
            client = ds.Client(server.api_key, base_url=server.url)
            with client.realtime.connect() as session:
                session.attach(speaker=speaker, microphone=mic, echo="aec")
                speaker.write(resample_pcm16(speech_like_pcm16(0.5), 16000, 24000))
                inputs[0].push(speech_like_pcm16(0.1))
                connection = server.connections[0]
                assert wait_until(
                    lambda: any(
                        f["type"] == "input_audio_buffer.append" for f in connection.received
                    )
                )
                session.detach()

    @pytest.mark.parametrize("echo", ["gate", "aec"])
    def test_echo_needs_both_devices(self, session: ds.RealtimeSession, echo: str) -> None:
        """echo= without both a speaker and a microphone raises ConfigError."""
        with pytest.raises(ds.ConfigError, match="needs both"):
            session.attach(speaker=ds.Speaker(), echo=echo)

    def test_bad_echo(self, session: ds.RealtimeSession) -> None:
        """An unknown echo mode raises ConfigError."""
        with pytest.raises(ds.ConfigError):
            session.attach(echo="cancel")
