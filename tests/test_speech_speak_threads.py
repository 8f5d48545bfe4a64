"""speak()'s threads: never blocked by an earlier text source, woken and joined by close (review 15, findings 5 and 8)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = pytest.mark.both_modes

MODEL = ds.MODEL_QWEN3_TTS_FLASH_REALTIME

#: Generous bound on anything that should happen at once (a loaded 2-core machine).
PROMPT = 10.0


class StalledSource:
    """A text source (an LLM's stream) that gives one piece, then waits for `release`."""

    def __init__(self) -> None:
        # Set by the test to let the source go on; until then it is stuck producing its 2nd piece.
        self.release = threading.Event()
        # Set once the source is producing its 2nd piece (the feeder is inside it).
        self.stalled = threading.Event()
        self.resumed = False

    def __iter__(self) -> Iterator[str]:
        yield "First part. "
        self.stalled.set()
        self.release.wait(60)
        yield "Second part."
        self.resumed = True  # pulled again after the piece it was producing
        yield "Third part."


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``call`` on a thread of the test; its result or error lands in the dict."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = call()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, name="test-speak", daemon=True)
    thread.start()
    return thread, out


def _speeches_open(session: ds.SpeechSession) -> int:
    return len(session._core.peek(session._book.speaking))


def test_speak_iterable_returns_at_once_while_an_earlier_source_is_stalled(
    client: ds.Client,
) -> None:
    """speak(iterable) returns at once even while an earlier speech's text source is stalled."""
    source = StalledSource()
    with client.speech.connect(model=MODEL, mode="commit") as session:
        first = session.speak(source)
        try:
            assert source.stalled.wait(PROMPT)
            thread, out = _in_thread(lambda: session.speak(iter(["Later speech."])))
            thread.join(PROMPT)
            assert not thread.is_alive(), "speak(iterable) blocked behind the stalled source"
            later = out["result"]
            assert isinstance(later, ds.Speech)
        finally:
            source.release.set()
        assert first.wait(PROMPT).text == "First part. Second part.Third part."
        result = later.wait(PROMPT)
        assert result.text == "Later speech." and result.characters == len("Later speech.")


def test_speak_str_behind_a_stalled_source_times_out_sending_nothing(
    client: ds.Client,
) -> None:
    """speak(str) behind a stalled text source raises DashScopeTimeout after request_timeout, sending nothing."""
    source = StalledSource()
    with client.speech.connect(model=MODEL, mode="commit", request_timeout=0.5) as session:
        first = session.speak(source)
        try:
            assert source.stalled.wait(PROMPT)
            thread, out = _in_thread(lambda: session.speak("Waiting speech."))
            thread.join(PROMPT)
            assert not thread.is_alive(), "speak(str) waited with no bound"
            assert isinstance(out.get("error"), ds.DashScopeTimeout), out
        finally:
            source.release.set()
        # The first speech keeps the wire and completes alone.
        result = first.wait(PROMPT)
        assert result.text == "First part. Second part.Third part."
        assert result.characters == len(result.text)


def test_close_wakes_a_speak_str_waiting_behind_a_stalled_source(client: ds.Client) -> None:
    """close() wakes a speak(str) waiting for the wire behind a stalled source: SessionClosedError."""
    source = StalledSource()
    session = client.speech.connect(model=MODEL, request_timeout=None, handler_timeout=0.5)
    try:
        session.speak(source)
        assert source.stalled.wait(PROMPT)
        thread, out = _in_thread(lambda: session.speak("Waiting speech."))
        # Registered (its speech is open) before close(), so it is the wait that is woken.
        deadline = time.monotonic() + PROMPT
        while _speeches_open(session) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _speeches_open(session) == 2, "speak(str) never registered its speech"
        session.close()
        thread.join(PROMPT)
        assert not thread.is_alive(), "close() did not wake speak(str)"
        assert isinstance(out.get("error"), ds.SessionClosedError), out
    finally:
        source.release.set()
        session.close()
        thread.join(PROMPT)


def test_close_joins_the_feeder_and_warns_when_it_is_stuck_in_the_source(
    client: ds.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """close() signals the feeder, waits handler_timeout for it, warns it is stuck in the source,
    and once the source returns the feeder ends without pulling another piece."""
    source = StalledSource()
    session = client.speech.connect(model=MODEL, handler_timeout=0.2)
    speech = session.speak(source)
    feeder = speech._feeder
    assert feeder is not None
    try:
        assert source.stalled.wait(PROMPT)
        with caplog.at_level(logging.WARNING, logger="dashscope_sync"):
            session.close()
        assert any("dashscope_sync-speak" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        source.release.set()
        feeder.join(PROMPT)
    assert not feeder.is_alive()
    assert not source.resumed, "the feeder pulled another piece after close()"
    with pytest.raises(ds.SessionClosedError):
        speech.wait(PROMPT)


def test_close_joins_every_feeder_that_ends_within_handler_timeout(client: ds.Client) -> None:
    """close() returns only after the feeders ended: one released from its stalled source while
    close() waits, one still waiting for the wire (whose source is never started)."""
    source = StalledSource()
    started: list[str] = []

    def later() -> Iterator[str]:
        started.append("pulled")
        yield "Never sent."

    session = client.speech.connect(model=MODEL, handler_timeout=PROMPT)
    try:
        first = session.speak(source)
        assert source.stalled.wait(PROMPT)
        thread, out = _in_thread(lambda: session.speak(later()))
        thread.join(PROMPT)
        waiting = out.get("result")
        assert isinstance(waiting, ds.Speech), out
        feeder = waiting._feeder
        assert feeder is not None
        # The stalled source is released while close() waits, so close() can join both.
        threading.Timer(1.0, source.release.set).start()
        session.close()
        assert first._feeder is not None and not first._feeder.is_alive(), "close() did not join"
        assert not feeder.is_alive(), "close() left the waiting feeder running"
        assert not source.resumed, "the feeder pulled another piece after close()"
        assert started == []
        with pytest.raises(ds.SessionClosedError):
            waiting.wait(PROMPT)
    finally:
        source.release.set()
        session.close()


def test_cancelling_a_speech_still_waiting_for_its_turn_clears_nothing(
    server: LocalRealtimeServer, client: ds.Client
) -> None:
    """A speech cancelled while it waits behind a streaming one sends no clear: the buffer
    holds the earlier speech's text, which is still spoken whole."""
    source = StalledSource()
    with client.speech.connect(model=MODEL, mode="commit") as session:
        first = session.speak(source)
        try:
            assert source.stalled.wait(PROMPT)
            waiting = session.speak(iter(["Never sent."]))
            assert waiting.cancel()
        finally:
            source.release.set()
        result = first.wait(PROMPT)
        assert result.text == "First part. Second part.Third part."
        assert result.characters == len(result.text)
    sent = [frame["type"] for frame in server.received]
    assert "input_text_buffer.clear" not in sent
