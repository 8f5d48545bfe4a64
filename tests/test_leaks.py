"""Leaks and bounded memory over real sockets, and sends from many threads.

Cycle counts are short here; ``DASHSCOPE_SYNC_SOAK=1`` runs the long
versions (figures on the docs' Guarantees page). Linux only where
file descriptors are counted (``/proc/self/fd``).
"""

from __future__ import annotations

import base64
import gc
import logging
import os
import random
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

from ._net import MiniServer, RawPeer, raw_session, report, soak, text

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(600), pytest.mark.both_modes]

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")

CYCLES = soak(300, 5000)
DELTAS = soak(5_000, 100_000)
RATE = 5_000.0  # audio deltas per second in the long-session tests


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait (bounded) for ``check`` to hold: threads and sockets take a moment to wind down."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Keep the per-event DEBUG lines out of pytest's in-memory log capture."""
    caplog.set_level(logging.INFO, logger="dashscope_sync")


def cycles_stay_flat(name: str, one: Callable[[], None]) -> None:
    """Run ``one`` many times: threads and fds back to baseline, traced memory flat."""
    for _ in range(20):  # warm-up: lazy imports, caches, first-time allocations
        one()
    gc.collect()
    base_threads = threading.active_count()
    base_fds = fds()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        for _ in range(CYCLES):
            one()
        elapsed = time.monotonic() - started
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert settle(lambda: threading.active_count() <= base_threads), threading.enumerate()
    assert settle(lambda: fds() <= base_fds), (fds(), base_fds)
    growth = after - before
    report(
        name,
        cycles=CYCLES,
        seconds=round(elapsed, 1),
        growth_bytes=growth,
        threads=threading.active_count(),
        fds=fds(),
    )
    # A leaked session holds a 256 KiB read buffer; a leaked event list far more.
    assert growth < 256 * 1024 + CYCLES * 64, f"traced memory grew {growth} bytes"


@needs_proc
def test_connect_close_cycles_leak_nothing(quiet: None) -> None:
    """Hundreds of connect/close cycles return threads and fds to baseline and keep memory flat."""
    with MiniServer() as server:
        client = ds.Client("k", base_url=server.url)
        config = ds.RealtimeConfig(model="m", close_timeout=2.0)

        def one() -> None:
            with client.realtime.connect(config, timeout=10) as session:
                session.on("*", lambda event: None)  # the handler thread too

        cycles_stay_flat("connect/close", one)


@needs_proc
def test_authentication_failures_leak_nothing(quiet: None) -> None:
    """Hundreds of refused keys (HTTP 401) leak no thread, fd or memory."""
    with MiniServer(reject=True) as server:
        client = ds.Client("k", base_url=server.url)

        def one() -> None:
            with pytest.raises(ds.AuthenticationError):
                client.realtime.connect(model="m", timeout=10)

        cycles_stay_flat("auth failures", one)


@needs_proc
def test_refused_connections_leak_nothing(quiet: None) -> None:
    """Hundreds of refused TCP connections leak no thread, fd or memory."""
    server = MiniServer()
    url = server.url
    server.close()  # nothing listens there any more
    client = ds.Client("k", base_url=url)

    def one() -> None:
        with pytest.raises(ds.TransportError):
            client.realtime.connect(model="m", timeout=10)

    cycles_stay_flat("refused connections", one)


# A long session ------------------------------------------------------------------------

PCM = bytes(range(256)) * 18 + bytes(192)  # 4800 bytes: 100 ms of 24 kHz PCM16
DELTA = text(
    {
        "type": "response.audio.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "delta": base64.b64encode(PCM).decode(),
    }
)
SENTINEL = text({"type": "x.sentinel"})


def blast(peer: RawPeer, count: int, rate: float | None = None) -> threading.Thread:
    """Send ``count`` audio deltas then a sentinel, from a thread, in batches of 100.

    ``rate`` (events per second) paces the batches; None sends as fast as
    loopback allows.
    """

    def run() -> None:
        batch = DELTA * 100
        started = time.monotonic()
        for i in range(count // 100):
            peer.send(batch)
            if rate is not None:
                ahead = started + (i + 1) * 100 / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        peer.send(DELTA * (count % 100) + SENTINEL)

    thread = threading.Thread(target=run, name="test-blast")
    thread.start()
    return thread


@pytest.mark.parametrize("mode", ["callbacks only", "iterator only", "both"])
def test_long_session_keeps_memory_flat(mode: str, quiet: None) -> None:
    """A long session of audio deltas, 250 times faster than real time, leaves traced memory flat whoever reads them."""
    # The service sends about 20 audio deltas a second; these come at 5000.
    # An unpaced flood outruns the handler thread, whose queue has no bound
    # yet: see tests/pending_core/test_handler_backlog.py.
    peer = RawPeer()
    buffered = 0 if mode == "callbacks only" else 4096
    with raw_session(peer, max_buffered_events=buffered) as session:
        got = {"handler": 0, "iterator": 0}
        done = threading.Event()

        def count(event: ds.ServerEvent) -> None:
            if isinstance(event, ds.ResponseAudioDelta):
                assert event.delta == PCM
                got["handler"] += 1
            elif event.type == "x.sentinel":
                done.set()

        if mode != "iterator only":
            session.on("*", count)
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            started = time.monotonic()
            sender = blast(peer, DELTAS, rate=RATE)
            if mode == "callbacks only":
                assert done.wait(300)
            else:
                for event in session.events(timeout=60):
                    if isinstance(event, ds.ResponseAudioDelta):
                        got["iterator"] += 1
                    elif event.type == "x.sentinel":
                        break
                if mode == "both":
                    assert done.wait(60)
            elapsed = time.monotonic() - started
            sender.join(60)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert session.dropped_events == 0
    expected = {
        "callbacks only": {"handler": DELTAS, "iterator": 0},
        "iterator only": {"handler": 0, "iterator": DELTAS},
        "both": {"handler": DELTAS, "iterator": DELTAS},
    }[mode]
    assert got == expected
    traffic = DELTAS * len(DELTA)
    report(
        f"long session, {mode}",
        deltas=DELTAS,
        rate=RATE,
        traffic_mib=round(traffic / 2**20),
        seconds=round(elapsed, 1),
        peak_traced_mib=round(peak / 2**20, 1),
    )
    # Bounded by the pull buffer (4096 events of ~5 KiB at most, when the
    # iterator lags) and working buffers, never by the traffic.
    limit = (8 << 20) + buffered * 6 * 1024
    assert peak < limit, f"peak {peak / 2**20:.1f} MiB for {traffic / 2**20:.0f} MiB of traffic"


def test_no_reader_drops_are_counted_exactly_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With nobody reading, a full buffer drops exactly the overflow, counted in dropped_events, with one warning."""
    caplog.set_level(logging.INFO, logger="dashscope_sync")
    peer = RawPeer()
    size = 1000
    count = DELTAS
    with raw_session(peer, max_buffered_events=size) as session:
        blast(peer, count).join(120)
        expected = count + 1 - size  # the deltas and the sentinel, less what the buffer keeps
        assert settle(lambda: session.dropped_events >= expected, timeout=120)
        time.sleep(0.2)  # nothing more may be counted
        assert session.dropped_events == expected
        report("no reader", deltas=count, buffer=size, dropped=session.dropped_events)
        kept = []
        while len(kept) < size:
            kept.append(session.recv(timeout=10))
        assert kept[-1] is not None and kept[-1].type == "x.sentinel"
    warnings = [
        r for r in caplog.records if r.name == "dashscope_sync" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


# Many threads -----------------------------------------------------------------------------

SENDERS = 8
PER_SENDER = soak(150, 2000)


def test_eight_threads_send_while_another_iterates(quiet: None) -> None:
    """8 threads sending at once, while another iterates and a handler runs: every frame arrives whole, each thread's in order."""
    with LocalRealtimeServer() as server:
        client = ds.Client(server.api_key, base_url=server.url)
        with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
            handled = []
            session.on("*", handled.append)
            stop = threading.Event()
            pulled: list[ds.ServerEvent] = []
            errors: list[BaseException] = []

            def iterate() -> None:
                try:
                    while not stop.is_set():
                        try:
                            event = session.recv(timeout=0.2)
                        except ds.DashScopeTimeout:
                            continue
                        if event is None:
                            return
                        pulled.append(event)
                except BaseException as exc:  # reported below
                    errors.append(exc)

            def send(index: int) -> None:
                rng = random.Random(index)
                try:
                    for seq in range(PER_SENDER):
                        if seq % 10 == 9:
                            session.append_audio(bytes([index]) * rng.randint(2, 20000) * 2)
                        else:
                            session.send_raw(
                                {"type": "x.load", "thread": index, "seq": seq, "pad": "p" * rng.randint(0, 70000)}
                            )  # fmt: skip
                except BaseException as exc:
                    errors.append(exc)

            reader = threading.Thread(target=iterate)
            reader.start()
            senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(120)
            total = SENDERS * PER_SENDER
            assert settle(lambda: len(server.received) >= total, timeout=60)
            stop.set()
            reader.join(10)
            assert not errors, errors
            loads = [f for f in server.received if f["type"] == "x.load"]
            for index in range(SENDERS):
                seqs = [f["seq"] for f in loads if f["thread"] == index]
                assert seqs == [s for s in range(PER_SENDER) if s % 10 != 9]
            audio = [f for f in server.received if f["type"] == "input_audio_buffer.append"]
            assert len(audio) == SENDERS * (PER_SENDER // 10)
            assert len(server.received) == total
            report("8 senders", frames=total, pulled=len(pulled), handled=len(handled))
            # Every load frame was answered (the server rejects the unknown
            # type), and both consumers saw those answers.
            assert pulled and handled


RACES = soak(10, 200)


def test_close_racing_with_sends_and_receives_ends_cleanly(quiet: None) -> None:
    """close() while 8 threads send and another receives: every thread ends promptly, raising only the library's own errors."""
    with MiniServer() as server:
        client = ds.Client("k", base_url=server.url)
        for run in range(RACES):
            session = client.realtime.connect(model="m")
            outcomes: list[BaseException | None] = []

            def record(
                outcome: BaseException | None, into: list[BaseException | None] = outcomes
            ) -> None:
                into.append(outcome)  # list.append is atomic

            def sender(index: int, s: ds.RealtimeSession = session) -> None:
                try:
                    for seq in range(100_000):
                        s.send_raw({"type": "x.load", "thread": index, "seq": seq})
                except BaseException as exc:
                    record(exc)
                else:
                    record(None)

            def receiver(s: ds.RealtimeSession = session) -> None:
                try:
                    for _ in s.events(timeout=30):
                        pass
                except BaseException as exc:
                    record(exc)
                else:
                    record(None)

            threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
            threads.append(threading.Thread(target=receiver))
            for thread in threads:
                thread.start()
            time.sleep(random.Random(run).uniform(0.0, 0.05))
            session.close()
            for thread in threads:
                thread.join(15)
            assert not any(t.is_alive() for t in threads)
            unexpected = [
                o for o in outcomes if o is not None and not isinstance(o, ds.DashScopeError)
            ]
            assert not unexpected, unexpected
            assert len(outcomes) == len(threads)
        report("close races", runs=RACES, threads=len(threads))
