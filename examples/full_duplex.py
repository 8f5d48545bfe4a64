"""Full duplex: microphone in, speaker out, server VAD, barge-in (talk over the reply to stop it).

Needs the [audio] extra and headphones; with loudspeakers pass echo="aec" to attach() (the
[aec] extra) or echo="gate" (then you cannot barge in). Ctrl-C ends it. A failure is one line,
with the exit code `dashscope-sync --help` lists.
    python examples/full_duplex.py           # the real service (DASHSCOPE_API_KEY)
    python examples/full_duplex.py --local   # simulated server; a bundled question speaks
"""

import argparse
import contextlib
import sys

import dashscope_sync as ds

parser = argparse.ArgumentParser()
parser.add_argument("--local", action="store_true", help="simulated server, no microphone")
args = parser.parse_args()
try:
    with contextlib.ExitStack() as stack:
        speaker = stack.enter_context(ds.Speaker())  # first: no [audio] extra or device fails here
        if args.local:
            from dashscope_sync.testing import LocalRealtimeServer

            server = stack.enter_context(LocalRealtimeServer(server_vad=True))
            client = ds.Client(server.api_key, base_url=server.url)
        else:
            client = ds.Client()  # the key from DASHSCOPE_API_KEY
        session = stack.enter_context(client.realtime.connect())  # server VAD by default
        mic = None if args.local else stack.enter_context(ds.Microphone())
        session.attach(speaker=speaker, microphone=mic, barge_in=True)
        if args.local:  # the question, then a second of silence to end the turn
            pcm = ds.load_audio(ds.sample_wav_path()) + bytes(32000)
            ds.stream_pcm(session, pcm, realtime=False)
        with contextlib.suppress(KeyboardInterrupt):
            for event in session.events():
                if isinstance(event, ds.ResponseAudioTranscriptDelta):
                    print(event.delta, end="", flush=True)
                elif isinstance(event, ds.ResponseDone):
                    print(f"  [{event.response.status}]")
                    if args.local:
                        break  # one reply is the demo
except (ds.DashScopeError, ImportError) as exc:
    print(f"error: {exc}", file=sys.stderr)
    codes = [(ds.AuthenticationError, 4), (ds.APIError, 7), (ds.TransportError, 6)]
    # A ConfigError here is no DASHSCOPE_API_KEY (3), or no [audio] extra or PortAudio (8).
    codes += [(ds.DashScopeTimeout, 6), (ImportError, 8), (ds.ConfigError, 8)]
    key = ds.API_KEY_ENV in str(exc)
    sys.exit(3 if key else next((code for kind, code in codes if isinstance(exc, kind)), 1))
