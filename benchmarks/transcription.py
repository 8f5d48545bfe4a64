"""How soon ``session.transcripts()`` yields an interim transcript after its frame is written.

Run by hand (the ``testing`` extra provides the server's ``websockets``)::

    python benchmarks/transcription.py [--events 2000] [--interval-ms 5] [--reps 5]

A Qwen-ASR-Realtime server in its own process (``--serve``, so its CPU is
never the client's) answers the one ``session.update``, then, on the first
``input_audio_buffer.append``, writes N
``conversation.item.input_audio_transcription.text`` events, one every
INTERVAL ms, then the item's ``.completed``; ``session.finish`` gets
``session.finished``. Each interim's ``stash`` is the server's
``time.monotonic_ns()`` taken just before the frame is written (on Linux
CLOCK_MONOTONIC is one clock for the whole system), so the client's latency
is its own ``time.monotonic_ns()`` when the transcript reaches user code,
minus that stamp: loopback transfer, frame parsing, decoding, the state
machine, the mailbox and the iterator, all included.

Two readers of the same stream:

- ``floor``: websocket-client ``recv`` + ``json.loads`` on one thread, no library;
- ``transcripts``: ``client.transcription.connect()`` then ``for t in session.transcripts()``.

Target (issue 15): ``transcripts`` p50 under 1 ms. ``--smoke`` runs tiny
sizes and only checks that every event arrived (tests/test_benchmark_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

#: The model every reader asks for (the server does not check it).
MODEL = "qwen3-asr-flash-realtime"


# The server (child process) -----------------------------------------------------------


def serve(events: int, interval_ms: float) -> None:
    """Serve until standard input closes; print ``PORT <n>`` once listening."""
    import threading

    from websockets.sync.server import ServerConnection, serve

    def handle(ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "session.created", "session": {"id": "sess_bench"}}))
        streaming = False
        for message in ws:
            event = json.loads(message)
            kind = event.get("type")
            if kind == "session.update":
                session = {"id": "sess_bench", **event.get("session", {})}
                ws.send(json.dumps({"type": "session.updated", "session": session}))
            elif kind == "input_audio_buffer.append" and not streaming:
                streaming = True
                threading.Thread(target=stream, args=(ws,), daemon=True).start()
            elif kind == "session.finish":
                ws.send(json.dumps({"type": "session.finished"}))

    def stream(ws: ServerConnection) -> None:
        head = (
            '{"type":"conversation.item.input_audio_transcription.text","item_id":"item_1",'
            '"content_index":0,"language":"en","emotion":"neutral","text":"%s","stash":"%020d"}'
        )
        step = int(interval_ms * 1e6)
        due = time.monotonic_ns()
        for n in range(events):
            due += step
            wait = due - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            ws.send(head % ("w" * (n % 50), time.monotonic_ns()))
        ws.send(
            json.dumps(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": "item_1",
                    "transcript": "done",
                }
            )
        )

    with serve(handle, "127.0.0.1", 0, compression=None) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"PORT {port}", flush=True)
        sys.stdin.read()  # until the parent ends
        server.shutdown()


# The readers (this process) ------------------------------------------------------------


def read_floor(port: int) -> list[int]:
    """websocket-client on one thread: the cost of the same reading done by hand."""
    import websocket

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/?model={MODEL}", skip_utf8_validation=True
    )
    try:
        json.loads(ws.recv())  # session.created
        ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        json.loads(ws.recv())  # session.updated
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "AAAA"}))
        latencies = []
        while True:
            event = json.loads(ws.recv())
            now = time.monotonic_ns()
            if event["type"].endswith(".completed"):
                return latencies
            latencies.append(now - int(event["stash"]))
    finally:
        ws.close()


def read_transcripts(port: int) -> list[int]:
    """dashscope_sync: ``session.transcripts()``, public API only."""
    import dashscope_sync as ds

    client = ds.Client("k", base_url=f"ws://127.0.0.1:{port}/")
    latencies = []
    with client.transcription.connect(MODEL, turn_detection=None, timeout=10) as session:
        session.append_audio(b"\x00\x00" * 1600)
        for transcript in session.transcripts(timeout=30):
            now = time.monotonic_ns()
            if transcript.final:
                break
            latencies.append(now - int(transcript.stash))
        session.finish(timeout=10)
    return latencies


READERS = {"floor": read_floor, "transcripts": read_transcripts}


def summary(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000,
        "max_us": ordered[-1] / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="interims per run")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="between interims")
    parser.add_argument("--reps", type=int, default=5, help="runs per reader, interleaved")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no timing")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.interval_ms, args.reps = 20, 1.0, 1
    if args.serve:
        serve(args.events, args.interval_ms)
        return 0
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--events",
            str(args.events),
            "--interval-ms",
            str(args.interval_ms),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in READERS}
        problems = []
        for _ in range(args.reps):
            for name, read in READERS.items():
                latencies = read(port)
                if len(latencies) != args.events:
                    problems.append(f"{name}: {len(latencies)} of {args.events} interims")
                    continue
                runs[name].append(summary(latencies))
    finally:
        server.communicate("")  # closes its standard input: it exits
    result: dict[str, Any] = {"problems": problems, "runs": runs}
    if not args.smoke:
        print(f"{args.events} interims every {args.interval_ms} ms, {args.reps} runs each:")
        print("| reader | p50 us | p99 us | max us |")
        print("|---|---:|---:|---:|")
        for name, reps in runs.items():
            if reps:
                cells = [statistics.median(r[key] for r in reps) for key in ("p50_us", "p99_us")]
                cells.append(max(r["max_us"] for r in reps))
                print(f"| {name} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
        p50 = [r["p50_us"] for r in runs["transcripts"]]
        if p50:
            verdict = "met" if statistics.median(p50) < 1000 else "MISSED"
            print(f"target transcripts() p50 < 1000 us: {verdict}")
    if args.smoke:
        print(json.dumps(result))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
