"""Full duplex: microphone in, speaker out, server VAD, barge-in (talk over the reply to stop it).

Needs the [audio] extra and headphones; with loudspeakers pass echo="gate" to attach()
(the model then never hears itself, and you cannot barge in). Ctrl-C ends it.
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
    session.on(ds.ResponseAudioTranscriptDelta, lambda e: print(e.delta, end="", flush=True))
    if args.local:  # the question, then a second of silence to end the turn
        pcm = ds.load_audio(ds.sample_wav_path()) + bytes(32000)
        ds.stream_pcm(session, pcm, realtime=False)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            print(f"  [{session.wait_for(ds.ResponseDone).response.status}]")
            if args.local:
                break  # one reply is the demo
