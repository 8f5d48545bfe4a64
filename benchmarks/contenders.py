"""The clients under test and the workloads they run, one per process.

``bench.py`` runs ``python benchmarks/contenders.py CONTENDER WORKLOAD --port P ...``
once per measurement, so each contender's CPU time, threads and memory are
its own; this prints one ``RESULT {json}`` line.

Contenders (all read the same frames from ``server.py``):

``floor``
    websocket-client's ``create_connection`` + ``recv`` + ``json.loads`` +
    ``base64.b64decode``, all in one thread (with the same two connection
    options dashscope_sync uses: ``skip_utf8_validation=True``,
    ``enable_multithread=False``).
``floor_queue``
    The floor of the shape dashscope_sync must have: a reader thread doing
    the above and handing the decoded dicts to the consuming thread through
    ``queue.Queue``.
``ds_callback`` / ``ds_iter``
    dashscope_sync through ``session.on(...)`` handlers (with
    ``max_buffered_events=0``), and through ``for event in session.events()``.
    Public API only.
``ds_shared``
    ``ds_callback`` in shared mode: every session of the process on one
    ``ds.Reactor()`` (one reader thread, handlers on its pool of 4).
``ds_record`` / ``ds_record_lean``
    ``ds_callback`` with ``session.record(folder)`` running (``audio=True``;
    ``_lean``: ``audio=False``), the recording flushed (``Recorder.flush``)
    before ``response.done`` counts as seen, so the recorder thread's work is
    inside the measured window. Not run unless named in ``--contenders``.
``dashscope``
    The official SDK's ``OmniRealtimeConversation`` (its ``on_event``
    callback gets a dict; audio is base64-decoded there, as a user must).
``openai``
    openai's synchronous realtime client (``client.beta.realtime.connect``,
    the beta interface whose event names match DashScope's), iterated.

Latency in ``paced`` is taken where user code first sees the event: in the
handler, or where the iterator yields.
"""

from __future__ import annotations

import argparse
import base64
import gc
import importlib
import json
import os
import queue
import resource
import statistics
import sys
import threading
import time
import traceback
from typing import Any

URL_PATH = "/api-ws/v1/realtime"
API_KEY = "sk-bench-not-a-real-key"
TRIGGER = '{"event_id":"event_trigger","type":"response.create"}'
AUDIO = "response.audio.delta"
TEXT = "response.audio_transcript.delta"
DONE = "response.done"
COMMITTED = "input_audio_buffer.committed"
#: 100 ms of 16 kHz mono PCM16: one append.
UPLOAD_CHUNK = 3200
TIMEOUT = 120.0
PAGE = os.sysconf("SC_PAGE_SIZE")


def url(port: int, model: str) -> str:
    return f"ws://127.0.0.1:{port}{URL_PATH}?model={model}"


def rss_now() -> int:
    """Resident set size now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def rss_peak() -> int:
    """Peak resident set size of this process, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def threads_now() -> int:
    """OS threads of this process (Python's and any others)."""
    return len(os.listdir("/proc/self/task"))


class Sink:
    """Where every contender hands what it received; counts it and times it."""

    __slots__ = ("audio_bytes", "lat", "n_audio", "n_text", "paced", "text_chars")

    def __init__(self, paced: bool = False) -> None:
        self.paced = paced
        self.n_audio = self.audio_bytes = self.n_text = self.text_chars = 0
        self.lat: list[int] = []

    def audio(self, event_id: str, pcm: bytes) -> None:
        if self.paced:
            # ``mono_<server's monotonic_ns>``: see server.py.
            self.lat.append(time.monotonic_ns() - int(event_id[5:]))
        self.n_audio += 1
        self.audio_bytes += len(pcm)

    def text(self, delta: str) -> None:
        self.n_text += 1
        self.text_chars += len(delta)


# Contenders -------------------------------------------------------------------


class Contender:
    """One connection: ``connect``, then ``start`` + ``finish`` or ``upload``, then ``close``."""

    #: True when events arrive on the library's own thread (no consumer thread needed).
    callback_style = False
    #: What the contender imports; `load` imports it before anything is measured.
    modules: tuple[str, ...] = ("websocket",)

    @classmethod
    def load(cls) -> None:
        for name in cls.modules:
            importlib.import_module(name)

    def connect(self, port: int, model: str) -> None:
        raise NotImplementedError

    def start(self, sink: Sink) -> None:
        """Send the trigger (after subscribing, for callback styles)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Block until ``response.done`` has been handled."""
        raise NotImplementedError

    def upload(self, chunks: list[bytes]) -> str:
        """Append every chunk, commit, and return the ``item_id`` of the acknowledgement."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}


class Floor(Contender):
    def connect(self, port: int, model: str) -> None:
        import websocket

        self.ws = websocket.create_connection(
            url(port, model),
            header=[f"Authorization: Bearer {API_KEY}"],
            skip_utf8_validation=True,
            enable_multithread=False,
        )
        while json.loads(self.ws.recv())["type"] != "session.created":
            pass

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self.ws.send(TRIGGER)

    def finish(self) -> None:
        recv, loads, b64decode, sink = self.ws.recv, json.loads, base64.b64decode, self.sink
        while True:
            obj = loads(recv())
            t = obj["type"]
            if t == AUDIO:
                sink.audio(obj["event_id"], b64decode(obj["delta"]))
            elif t == TEXT:
                sink.text(obj["delta"])
            elif t == DONE:
                return

    def upload(self, chunks: list[bytes]) -> str:
        send, dumps, b64encode = self.ws.send, json.dumps, base64.b64encode
        for i, chunk in enumerate(chunks):
            send(
                dumps(
                    {
                        "event_id": f"event_{i}",
                        "type": "input_audio_buffer.append",
                        "audio": b64encode(chunk).decode("ascii"),
                    }
                )
            )
        send(dumps({"event_id": "event_commit", "type": "input_audio_buffer.commit"}))
        while True:
            obj = json.loads(self.ws.recv())
            if obj["type"] == COMMITTED:
                return str(obj["item_id"])

    def close(self) -> None:
        self.ws.close()


class FloorQueue(Contender):
    """A reader thread decodes and puts ``(self, dict)`` on a ``queue.Queue``."""

    def __init__(self, shared: queue.Queue[Any] | None = None) -> None:
        self.q: queue.Queue[Any] = shared if shared is not None else queue.Queue()

    def connect(self, port: int, model: str) -> None:
        import websocket

        self.ws = websocket.create_connection(
            url(port, model),
            header=[f"Authorization: Bearer {API_KEY}"],
            skip_utf8_validation=True,
            enable_multithread=False,
        )
        while json.loads(self.ws.recv())["type"] != "session.created":
            pass
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        recv, loads, b64decode, put = self.ws.recv, json.loads, base64.b64decode, self.q.put
        try:
            while True:
                text = recv()
                if not text:  # the close frame
                    return
                obj = loads(text)
                if obj["type"] == AUDIO:
                    obj["delta"] = b64decode(obj["delta"])
                put((self, obj))
        except Exception:
            return

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self.ws.send(TRIGGER)

    def handle(self, obj: dict[str, Any]) -> bool:
        """Consume one event on the consuming thread; True at ``response.done``."""
        t = obj["type"]
        if t == AUDIO:
            self.sink.audio(obj["event_id"], obj["delta"])
        elif t == TEXT:
            self.sink.text(obj["delta"])
        elif t == DONE:
            return True
        return False

    def finish(self) -> None:
        get = self.q.get
        while True:
            conn, obj = get(timeout=TIMEOUT)
            if conn.handle(obj):
                return

    def upload(self, chunks: list[bytes]) -> str:
        send, dumps, b64encode = self.ws.send, json.dumps, base64.b64encode
        for i, chunk in enumerate(chunks):
            send(
                dumps(
                    {
                        "event_id": f"event_{i}",
                        "type": "input_audio_buffer.append",
                        "audio": b64encode(chunk).decode("ascii"),
                    }
                )
            )
        send(dumps({"event_id": "event_commit", "type": "input_audio_buffer.commit"}))
        while True:
            _, obj = self.q.get(timeout=TIMEOUT)
            if obj["type"] == COMMITTED:
                return str(obj["item_id"])

    def close(self) -> None:
        self.ws.send_close()
        self.reader.join(10)
        self.ws.shutdown()


class DsIter(Contender):
    modules = ("dashscope_sync",)

    def connect(self, port: int, model: str) -> None:
        import dashscope_sync as ds

        self.ds = ds
        client = ds.Client(API_KEY, base_url=f"ws://127.0.0.1:{port}{URL_PATH}")
        self.session = client.realtime.connect(self.config(ds, model))

    def config(self, ds: Any, model: str) -> Any:
        return ds.RealtimeConfig(model=model)

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self.session.create_response()

    def finish(self) -> None:
        ds, sink = self.ds, self.sink
        audio, text, done = ds.ResponseAudioDelta, ds.ResponseAudioTranscriptDelta, ds.ResponseDone
        for event in self.session.events(timeout=TIMEOUT):
            t = type(event)
            if t is audio:
                sink.audio(event.event_id, event.delta)
            elif t is text:
                sink.text(event.delta)
            elif t is done:
                return
        raise RuntimeError("the session ended before response.done")

    def upload(self, chunks: list[bytes]) -> str:
        append = self.session.append_audio
        for chunk in chunks:
            append(chunk)
        self.session.commit_audio()
        return str(self.session.wait_for(self.ds.InputAudioBufferCommitted, TIMEOUT).item_id)

    def close(self) -> None:
        self.session.close()

    def extra(self) -> dict[str, Any]:
        return {"dropped_events": self.session.dropped_events}


class DsCallback(DsIter):
    callback_style = True

    def config(self, ds: Any, model: str) -> Any:
        return ds.RealtimeConfig(model=model, max_buffered_events=0)

    def start(self, sink: Sink) -> None:
        ds, session = self.ds, self.session
        self.done = done = threading.Event()
        session.on(ds.ResponseAudioDelta, lambda ev: sink.audio(ev.event_id, ev.delta))
        session.on(ds.ResponseAudioTranscriptDelta, lambda ev: sink.text(ev.delta))
        session.on(ds.ResponseDone, lambda ev: done.set())
        session.create_response()

    def finish(self) -> None:
        if not self.done.wait(TIMEOUT):
            raise TimeoutError("no response.done")

    def upload(self, chunks: list[bytes]) -> str:
        got: list[str] = []
        committed = threading.Event()

        def on_commit(ev: Any) -> None:
            got.append(ev.item_id)
            committed.set()

        self.session.on(self.ds.InputAudioBufferCommitted, on_commit)
        append = self.session.append_audio
        for chunk in chunks:
            append(chunk)
        self.session.commit_audio()
        if not committed.wait(TIMEOUT):
            raise TimeoutError("no input_audio_buffer.committed")
        return got[0]


class DsShared(DsCallback):
    """ds_callback with every session on one reactor (shared mode)."""

    reactor: Any = None

    def connect(self, port: int, model: str) -> None:
        import dashscope_sync as ds

        self.ds = ds
        if DsShared.reactor is None:
            # One for the process, as a server holding many calls would have;
            # its threads are daemons and end with the process.
            DsShared.reactor = ds.Reactor()
        client = ds.Client(
            API_KEY, base_url=f"ws://127.0.0.1:{port}{URL_PATH}", reactor=DsShared.reactor
        )
        self.session = client.realtime.connect(self.config(ds, model))


class DsRecord(DsCallback):
    """ds_callback with a recording running: every frame and the audio kept."""

    audio = True

    def connect(self, port: int, model: str) -> None:
        import tempfile

        super().connect(port, model)
        self.folder = tempfile.mkdtemp(prefix="bench-record-")
        self.recorder = self.session.record(self.folder, audio=self.audio)

    def finish(self) -> None:
        super().finish()
        # The recorder thread's work for the burst counts: wait for it.
        self.recorder.flush(TIMEOUT)

    def close(self) -> None:
        import shutil

        self.session.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class DsRecordLean(DsRecord):
    """ds_callback with a recording of the frames only (``audio=False``)."""

    audio = False


class Official(Contender):
    """dashscope's OmniRealtimeConversation: callbacks on its websocket-client thread."""

    callback_style = True
    modules = ("dashscope.audio.qwen_omni",)

    def connect(self, port: int, model: str) -> None:
        from dashscope.audio.qwen_omni import OmniRealtimeCallback, OmniRealtimeConversation

        outer = self

        class Callback(OmniRealtimeCallback):
            def on_event(self, message: Any) -> None:
                outer.on_event(message)

        self.ready = threading.Event()
        self.done = threading.Event()
        self.committed = threading.Event()
        self.item_id = ""
        self.sink = Sink()
        self.conv = OmniRealtimeConversation(
            model=model,
            callback=Callback(),
            url=f"ws://127.0.0.1:{port}{URL_PATH}",
            api_key=API_KEY,
        )
        self.conv.connect()
        if not self.ready.wait(TIMEOUT):
            raise TimeoutError("no session.created")

    def on_event(self, msg: dict[str, Any]) -> None:
        t = msg["type"]
        if t == AUDIO:
            self.sink.audio(msg["event_id"], base64.b64decode(msg["delta"]))
        elif t == TEXT:
            self.sink.text(msg["delta"])
        elif t == DONE:
            self.done.set()
        elif t == "session.created":
            self.ready.set()
        elif t == COMMITTED:
            self.item_id = msg["item_id"]
            self.committed.set()

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self.conv.create_response()

    def finish(self) -> None:
        if not self.done.wait(TIMEOUT):
            raise TimeoutError("no response.done")

    def upload(self, chunks: list[bytes]) -> str:
        append, b64encode = self.conv.append_audio, base64.b64encode
        for chunk in chunks:
            append(b64encode(chunk).decode("ascii"))
        self.conv.commit()
        if not self.committed.wait(TIMEOUT):
            raise TimeoutError("no input_audio_buffer.committed")
        return self.item_id

    def close(self) -> None:
        # Not joined: its websocket-client thread notices the close only at its
        # next select() timeout, up to 10 s later (it is a daemon thread).
        self.conv.close()


class OpenAIClient(Contender):
    """openai's sync realtime client (websockets.sync underneath), iterated."""

    modules = ("openai", "openai.resources.beta.realtime.realtime", "websockets.sync.client")

    def connect(self, port: int, model: str) -> None:
        from openai import OpenAI

        client = OpenAI(api_key=API_KEY, websocket_base_url=f"ws://127.0.0.1:{port}/v1")
        self.manager = client.beta.realtime.connect(model=model)
        self.conn = self.manager.enter()
        for event in self.conn:
            if event.type == "session.created":
                return
        raise RuntimeError("closed before session.created")

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self.conn.response.create()

    def finish(self) -> None:
        sink, b64decode = self.sink, base64.b64decode
        for event in self.conn:
            t = event.type
            if t == AUDIO:
                sink.audio(event.event_id, b64decode(event.delta))
            elif t == TEXT:
                sink.text(event.delta)
            elif t == DONE:
                return
        raise RuntimeError("the connection ended before response.done")

    def upload(self, chunks: list[bytes]) -> str:
        append, b64encode = self.conn.input_audio_buffer.append, base64.b64encode
        for chunk in chunks:
            append(audio=b64encode(chunk).decode("ascii"))
        self.conn.input_audio_buffer.commit()
        for event in self.conn:
            if event.type == COMMITTED:
                return str(event.item_id)
        raise RuntimeError("the connection ended before input_audio_buffer.committed")

    def close(self) -> None:
        self.conn.close()


CONTENDERS: dict[str, type[Contender]] = {
    "floor": Floor,
    "floor_queue": FloorQueue,
    "ds_callback": DsCallback,
    "ds_shared": DsShared,
    "ds_iter": DsIter,
    "ds_record": DsRecord,
    "ds_record_lean": DsRecordLean,
    "dashscope": Official,
    "openai": OpenAIClient,
}


# Workloads ----------------------------------------------------------------------


class GcWatch:
    """Collects the duration of every garbage collection (any thread) while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._start))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def as_dict(self) -> dict[str, Any]:
        full = [d for g, d in self.pauses if g == 2]
        return {
            "gc_collections": len(self.pauses),
            "gc_full": len(full),
            "gc_max_ms": max((d for _, d in self.pauses), default=0.0) * 1e3,
            "gc_full_max_ms": max(full, default=0.0) * 1e3,
            "gc_total_ms": sum(d for _, d in self.pauses) * 1e3,
        }


def sched_snapshot() -> dict[int, tuple[int, int, int]]:
    """Per OS thread: (ns on CPU, ns waiting in the run queue, times scheduled in)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                run, wait, slices = (int(x) for x in f.read().split()[:3])
        except (OSError, ValueError):
            continue
        out[int(tid)] = (run, wait, slices)
    return out


def thread_role(name: str) -> str:
    """A thread's job, the same for every session: ``Thread-7 (_read)`` -> ``_read``."""
    if name == "MainThread":
        return "main"
    if name.startswith("dashscope_sync-"):
        return name.removeprefix("dashscope_sync-")
    if "(" in name:
        return name[name.index("(") + 1 : name.rindex(")")]
    return name.rstrip("0123456789-") or "other"


class Meter:
    """CPU (all threads), wall time, context switches and GC pauses between two points.

    Also, from ``/proc/self/task/*/schedstat``, each kind of thread's time on
    CPU, time waiting for a CPU, and how often it was scheduled in (wake-ups).
    """

    def __enter__(self) -> Meter:
        self.gc = GcWatch().__enter__()
        self.sched0 = sched_snapshot()
        self.ru0 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        sched1 = sched_snapshot()
        self.gc.__exit__()
        names = {t.native_id: t.name for t in threading.enumerate()}
        self.sched: dict[str, dict[str, float]] = {}
        for tid, (run, wait, slices) in sched1.items():
            run0, wait0, slices0 = self.sched0.get(tid, (0, 0, 0))
            role = self.sched.setdefault(
                thread_role(names.get(tid, "other")), {"run_us": 0, "wait_us": 0, "wakeups": 0}
            )
            role["run_us"] += (run - run0) / 1e3
            role["wait_us"] += (wait - wait0) / 1e3
            role["wakeups"] += slices - slices0
        self.cpu = time.process_time() - self.cpu0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.vcsw = ru.ru_nvcsw - self.ru0.ru_nvcsw
        self.ivcsw = ru.ru_nivcsw - self.ru0.ru_nivcsw

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "vcsw": self.vcsw,
            "ivcsw": self.ivcsw,
            **self.gc.as_dict(),
            "sched": self.sched,
        }


def percentiles(values_ns: list[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean of nanosecond samples, in microseconds."""
    if not values_ns:
        return {}
    xs = sorted(values_ns)
    n = len(xs)

    def pct(p: float) -> float:
        # Nearest rank: the smallest sample with at least p% at or below it.
        return xs[min(n - 1, max(0, -(-n * p // 100) - 1))] / 1000

    return {
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "max_us": xs[-1] / 1000,
        "mean_us": statistics.fmean(xs) / 1000,
        "samples": n,
    }


def received(sink: Sink) -> dict[str, Any]:
    return {
        "n_audio": sink.n_audio,
        "audio_bytes": sink.audio_bytes,
        "n_text": sink.n_text,
        "text_chars": sink.text_chars,
    }


def run_burst(cls: type[Contender], args: argparse.Namespace) -> dict[str, Any]:
    c = cls()
    c.connect(args.port, f"burst-{args.n}")
    sink = Sink()
    with Meter() as m:
        c.start(sink)
        c.finish()
    threads = threads_now()
    extra = c.extra()
    c.close()
    # response.created + n x (audio delta, transcript delta) + response.done
    events = 2 * args.n + 2
    return {
        **m.as_dict(),
        **received(sink),
        **extra,
        "events": events,
        "events_per_s": events / m.wall,
        "cpu_us_per_event": m.cpu / events * 1e6,
        "threads": threads,
        "rss_peak": rss_peak(),
    }


def run_paced(cls: type[Contender], args: argparse.Namespace) -> dict[str, Any]:
    c = cls()
    c.connect(args.port, f"paced-{args.n}-{args.interval_us}-0")
    sink = Sink(paced=True)
    with Meter() as m:
        c.start(sink)
        c.finish()
    extra = c.extra()
    c.close()
    return {
        **m.as_dict(),
        **received(sink),
        **extra,
        **percentiles(sink.lat[args.warmup :]),
        "cpu_us_per_event": m.cpu / max(1, args.n) * 1e6,
    }


def run_upload(cls: type[Contender], args: argparse.Namespace) -> dict[str, Any]:
    pcm = (bytes(range(256)) * (args.seconds * 32000 // 256 + 1))[: args.seconds * 32000]
    chunks = [pcm[i : i + UPLOAD_CHUNK] for i in range(0, len(pcm), UPLOAD_CHUNK)]
    c = cls()
    c.connect(args.port, "upload")
    with Meter() as m:
        item_id = c.upload(chunks)
    c.close()
    _, got_bytes, got_frames = item_id.split("_")
    return {
        **m.as_dict(),
        "audio_seconds": args.seconds,
        "sent_bytes": len(pcm),
        "sent_frames": len(chunks),
        "server_bytes": int(got_bytes),
        "server_frames": int(got_frames),
        "cpu_ms_per_audio_s": m.cpu / args.seconds * 1e3,
    }


def run_rss(cls: type[Contender], args: argparse.Namespace) -> dict[str, Any]:
    before = rss_now()
    c = cls()
    t0 = time.perf_counter()
    c.connect(args.port, "idle")
    connect_s = time.perf_counter() - t0
    gc.collect()
    result = {
        "rss_before_connect": before,
        "rss_connected": rss_now(),
        "rss_peak": rss_peak(),
        "threads": threads_now(),
        "connect_s": connect_s,
    }
    c.close()
    return result


def run_scale(cls: type[Contender], args: argparse.Namespace) -> dict[str, Any]:
    sessions, n, interval = args.sessions, args.n, args.interval_us
    shared: queue.Queue[Any] | None = queue.Queue() if cls is FloorQueue else None
    gc.collect()
    threads_before = threads_now()
    rss = [rss_now()]
    conns: list[Contender] = []
    for i in range(sessions):
        c = FloorQueue(shared) if shared is not None else cls()
        # Phases spread evenly over the interval: sessions are not in lockstep.
        c.connect(args.port, f"paced-{n}-{interval}-{i * interval // sessions}")
        conns.append(c)
        rss.append(rss_now())
    if args.gc_freeze:
        # As a server would once its sessions are up: the collector stops
        # walking every session's long-lived objects on each full collection.
        gc.collect()
        gc.freeze()
    sinks = [Sink(paced=True) for _ in conns]
    sampled: list[int] = []
    # Sampled mid-stream by a timer thread, which does not count itself.
    sampler = threading.Timer(n * interval / 2e6, lambda: sampled.append(threads_now() - 1))
    consumers: list[threading.Thread] = []
    with Meter() as m:
        sampler.start()
        for c, s in zip(conns, sinks, strict=True):
            c.start(s)
        if args.gc_freeze:
            gc.freeze()  # and what starting made (handlers, responses); no collection
        if shared is not None:
            remaining = len(conns)
            while remaining:
                conn, obj = shared.get(timeout=TIMEOUT)
                if conn.handle(obj):
                    remaining -= 1
        elif cls.callback_style:
            for c in conns:
                c.finish()
        else:  # an iterator each needs a thread each
            consumers = [threading.Thread(target=c.finish, daemon=True) for c in conns]
            for t in consumers:
                t.start()
            for t in consumers:
                t.join(TIMEOUT)
    sampler.join()
    rss_after = rss_now()
    for c in conns:
        c.close()
    lat: list[int] = []
    for s in sinks:
        lat.extend(s.lat[args.warmup :])
    # Fitted from the first session on: the first also pays one-time costs
    # (imports, caches), reported on their own as rss_first_session.
    k = list(range(1, len(rss)))
    fit = rss[1:]
    if len(fit) >= 2:
        slope, intercept = statistics.linear_regression(k, fit)
        r = statistics.correlation(k, fit) if len(set(fit)) > 1 else 1.0
    else:
        slope, intercept, r = float(fit[0] - rss[0]), float(rss[0]), 1.0
    events = n * sessions
    threads_mid = sampled[0] if sampled else threads_now()
    return {
        **m.as_dict(),
        "sessions": sessions,
        "events": events,
        "n_audio": sum(s.n_audio for s in sinks),
        "audio_bytes": sum(s.audio_bytes for s in sinks),
        **percentiles(lat),
        "cpu_us_per_event": m.cpu / events * 1e6,
        "cpu_cores": m.cpu / m.wall,
        "threads_before": threads_before,
        "threads": threads_mid,
        "threads_per_session": (threads_mid - threads_before) / sessions,
        "rss_base": rss[0],
        "rss_connected": rss[-1],
        "rss_after_stream": rss_after,
        "rss_first_session": rss[1] - rss[0],
        "rss_per_session": slope,
        "rss_fit_r": r,
        "rss_intercept": intercept,
        "rss_peak": rss_peak(),
    }


WORKLOADS = {
    "burst": run_burst,
    "paced": run_paced,
    "upload": run_upload,
    "rss": run_rss,
    "scale": run_scale,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, default=5000, help="deltas (burst) or per session (paced)")
    parser.add_argument("--interval-us", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=5, help="paced samples dropped per session")
    parser.add_argument("--seconds", type=int, default=60, help="upload: seconds of audio")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument(
        "--gc-freeze", action="store_true", help="scale: gc.freeze() once every session is up"
    )
    args = parser.parse_args()
    cls = CONTENDERS[args.contender]
    try:
        cls.load()  # imports are timed on their own, never inside a workload
        result = WORKLOADS[args.workload](cls, args)
    except BaseException as exc:
        traceback.print_exc()
        print("RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(1)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
