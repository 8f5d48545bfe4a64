"""Full duplex: microphone in, speaker out, server VAD, barge-in (talk over the reply to stop it).

Needs the [audio] extra and headphones; with loudspeakers pass echo="aec" to attach() (the
[aec] extra) or echo="gate" (then you cannot barge in). Ctrl-C ends it.
    python examples/full_duplex.py           # the real service (DASHSCOPE_API_KEY)
    python examples/full_duplex.py --local   # simulated server; a bundled question speaks
"""

import argparse
import contextlib

import dashscope_sync as ds

parser = argparse.ArgumentParser()
parser.add_argument("--local", action="store_true", help="simulated server, no microphone")
args = parser.parse_args()

with contextlib.ExitStack() as stack:
    if args.local:
        from dashscope_sync.testing import LocalRealtimeServer

        server = stack.enter_context(LocalRealtimeServer(server_vad=True))
        client = ds.Client(server.api_key, base_url=server.url)
    else:
        client = ds.Client()  # the key from DASHSCOPE_API_KEY
    session = stack.enter_context(client.realtime.connect())  # server VAD by default
    speaker = stack.enter_context(ds.Speaker())
    mic = None if args.local else stack.enter_context(ds.Microphone())
    session.attach(speaker=speaker, microphone=mic, barge_in=True)
    if args.local:  # the question, then a second of silence to end the turn
        ds.stream_pcm(session, ds.load_audio(ds.sample_wav_path()) + bytes(32000), realtime=False)
    with contextlib.suppress(KeyboardInterrupt):
        for event in session.events():
            if isinstance(event, ds.ResponseAudioTranscriptDelta):
                print(event.delta, end="", flush=True)
            elif isinstance(event, ds.ResponseDone):
                print(f"  [{event.response.status}]")
                if args.local:
                    break  # one reply is the demo
