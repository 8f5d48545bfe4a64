"""Hold one voice turn with the local realtime server: no network, no API key.

Starts `dashscope_sync.testing.LocalRealtimeServer` in-process, sends 1.2 s of
synthetic 16 kHz speech-like audio in 100 ms chunks, commits it, asks for a
response, streams the reply's transcript to the terminal as it arrives, and
writes the reply's 24 kHz audio to a WAV file. The local server's replies
are simulated (it says so in its transcript).

Run:  python examples/demo_local.py [--output reply.wav]
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import time
import wave

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

CHUNK = 3200  # 100 ms of 16 kHz mono PCM16, the pace the service recommends


def synthetic_speech(seconds: float = 1.2, rate: int = ds.INPUT_SAMPLE_RATE) -> bytes:
    """A few vowel-like bursts: harmonics of a gliding pitch under a syllable envelope."""
    samples = []
    for n in range(int(seconds * rate)):
        t = n / rate
        pitch = 140 + 30 * math.sin(2 * math.pi * 0.8 * t)
        syllable = max(0.0, math.sin(2 * math.pi * 3 * t)) ** 2
        value = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
        samples.append(int(9000 * syllable * value / 1.8))
    return struct.pack(f"<{len(samples)}h", *samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    args = parser.parse_args(argv)

    with LocalRealtimeServer() as server:
        client = ds.Client(server.api_key, base_url=server.url)
        started = time.monotonic()
        with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
            print(
                f"connected to {server.url} as session {session.id} "
                f"({(time.monotonic() - started) * 1000:.1f} ms)"
            )
            session.update_session(
                ds.SessionUpdate(
                    modalities=["text", "audio"], voice=ds.VOICE_CHERRY, turn_detection=None
                )  # manual mode: we commit ourselves
            )

            audio = synthetic_speech()
            for start in range(0, len(audio), CHUNK):
                session.append_audio(audio[start : start + CHUNK])
            session.commit_audio()
            sent_at = time.monotonic()
            session.create_response()

            reply = bytearray()
            first_text = first_audio = None
            for event in session.events(timeout=30):
                if isinstance(event, ds.ResponseAudioTranscriptDelta):
                    if first_text is None:
                        first_text = time.monotonic()
                        print("assistant: ", end="")
                    print(event.delta, end="", flush=True)
                elif isinstance(event, ds.ResponseAudioDelta):
                    first_audio = first_audio or time.monotonic()
                    reply += event.delta
                elif isinstance(event, ds.ConversationItemInputAudioTranscriptionCompleted):
                    print(f"you said:  {event.transcript}")
                elif isinstance(event, ds.ErrorEvent):
                    print(f"\nerror: {event.error.message}", file=sys.stderr)
                    return 1
                elif isinstance(event, ds.ResponseDone):
                    usage = event.response.usage or {}
                    break
            done_at = time.monotonic()

    with wave.open(args.output, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(ds.OUTPUT_SAMPLE_RATE)
        wav.writeframes(bytes(reply))

    def ms(at: float | None) -> str:
        return "-" if at is None else f"{(at - sent_at) * 1000:.1f} ms"

    print()
    print(f"reply audio: {len(reply) / 2 / ds.OUTPUT_SAMPLE_RATE:.2f} s -> {args.output}")
    print(f"first text: {ms(first_text)}, first audio: {ms(first_audio)}, total: {ms(done_at)}")
    print(f"usage: {usage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
