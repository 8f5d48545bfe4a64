"""The one wait (Mailbox) and the dispatcher, with real threads but no sockets."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

import pytest

import dashscope_sync as ds
from dashscope_sync._core.dispatch import Dispatcher, Handlers
from dashscope_sync._core.mailbox import Mailbox
from dashscope_sync._deadline import Deadline
from dashscope_sync._errors import HandlerError
from dashscope_sync._fmt import seconds
from dashscope_sync._wire.codec import decode

pytestmark = pytest.mark.timeout(30)

DELTA = decode(b'{"type":"response.text.delta","response_id":"r1","delta":"x"}')


def failure(text: str) -> HandlerError:
    return HandlerError(text)


class TestMailbox:
    def test_handler_failure_wakes_any_wait(self) -> None:
        """A handler failure reported while a caller waits ends that wait with HandlerError."""
        mailbox = Mailbox(10)
        threading.Timer(0.1, mailbox.handler_failed, args=(lambda: failure("boom"),)).start()
        with pytest.raises(HandlerError, match="boom"):
            mailbox.wait(lambda: None, Deadline(None), "a wait")

    def test_failures_after_the_first_are_counted(self) -> None:
        """The first failure is raised once, with how many followed; then the slate is clean."""
        mailbox = Mailbox(10)
        made: list[str] = []

        def make(text: str) -> HandlerError:
            made.append(text)
            return failure(text)

        for n in range(5):
            mailbox.handler_failed(lambda n=n: make(f"failure {n}"))  # type: ignore[misc]
        assert made == ["failure 0"]  # later errors are not even built
        with pytest.raises(HandlerError) as info:
            mailbox.raise_handler_error()
        assert info.value.more_failures == 4
        assert "and 4 more" in str(info.value)
        mailbox.raise_handler_error()  # nothing pending now

    @pytest.mark.parametrize("pulled", [True, False])
    def test_overflow_is_logged_without_the_lock(self, pulled: bool) -> None:
        """The buffer-overflow message is logged once, after the mailbox lock is released."""
        mailbox = Mailbox(2)
        if pulled:
            mailbox.deliver(DELTA, 0.0)
            assert mailbox.next_event(Deadline(0), "recv()") is DELTA
        held: list[bool] = []

        class Probe(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "buffer full" in record.getMessage():
                    held.append(mailbox.lock.locked())  # one thread: locked() means by us

        probe = Probe(logging.DEBUG)
        log = logging.getLogger("dashscope_sync")
        level = log.level
        log.addHandler(probe)
        log.setLevel(logging.DEBUG)
        try:
            for _ in range(6):
                mailbox.deliver(DELTA, 0.0)
        finally:
            log.removeHandler(probe)
            log.setLevel(level)
        assert held == [False]
        assert mailbox.dropped_events == 4

    def test_end_wakes_the_puller(self) -> None:
        """The end of the session ends a blocked recv: cleanly after a 1000, else raising."""
        mailbox = Mailbox(10)
        threading.Timer(0.1, mailbox.ended, args=(1000, "", None)).start()
        assert mailbox.next_event(Deadline(None), "recv()") is None
        broken = Mailbox(10)
        broken.deliver(DELTA, 0.0)
        broken.ended(1011, "boom", None)
        assert broken.next_event(Deadline(0), "recv()") is DELTA  # what came first, first
        with pytest.raises(ds.TransportError) as info:
            broken.next_event(Deadline(0), "recv()")
        assert info.value.code == 1011

    def test_timeout_message_is_rounded(self) -> None:
        """A wait that runs out says how long it waited, rounded."""
        mailbox = Mailbox(10)
        with pytest.raises(ds.DashScopeTimeout, match=r"timed out after 0\.05 s$"):
            mailbox.wait(lambda: None, Deadline(0.05), "a wait")
        assert seconds(1.4999397950000457) == "1.5 s"
        assert seconds(None) == "no limit"

    def test_buffer_warns_only_programs_that_pull(self, caplog: pytest.LogCaptureFixture) -> None:
        """A full buffer warns once if the program reads it, and only logs at DEBUG if not."""
        quiet = Mailbox(2)
        for _ in range(5):
            quiet.deliver(DELTA, 0.0)
        assert quiet.dropped_events == 3 and len(quiet.buffer) == 2
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        pulled = Mailbox(2)
        pulled.deliver(DELTA, 0.0)
        pulled.next_event(Deadline(0), "recv()")
        for _ in range(5):
            pulled.deliver(DELTA, 0.0)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "event buffer full" in warnings[0].message

    def test_the_handler_thread_may_not_wait(self) -> None:
        """Waiting on the thread marked as the handler thread is a UsageError."""
        mailbox = Mailbox(10)
        mailbox.no_wait_thread = threading.current_thread()
        with pytest.raises(ds.UsageError, match="inside an event handler"):
            mailbox.wait(lambda: True, Deadline(None), "a wait")


class TestDispatcher:
    def test_backlog_is_bounded(self, caplog: pytest.LogCaptureFixture) -> None:
        """Past max_backlog the oldest events are dropped for handlers, counted, warned once."""
        handlers = Handlers()
        release = threading.Event()
        started = threading.Event()
        seen: list[object] = []

        def slow(event: ds.ServerEvent) -> None:
            started.set()
            release.wait(10)
            seen.append(event)

        handlers.add("response.text.delta", slow)
        dispatcher = Dispatcher(handlers, lambda make: None, max_backlog=3)
        dispatcher.start()
        events = [
            decode(f'{{"type":"response.text.delta","delta":"{n}"}}'.encode()) for n in range(10)
        ]
        dispatcher.put(events[0])
        assert started.wait(10)  # the handler thread holds the first event, blocked in it
        for event in events[1:]:
            dispatcher.put(event)
        release.set()
        dispatcher.stop()
        assert dispatcher.thread is not None
        dispatcher.thread.join(10)
        assert dispatcher.dropped == 6
        assert [e.delta for e in seen] == ["0", "7", "8", "9"]  # type: ignore[attr-defined]
        warned = [r for r in caplog.records if "handlers are 3 events behind" in r.message]
        assert len(warned) == 1

    def test_thread_ends_when_the_registry_is_collected(self) -> None:
        """The handler thread holds the registry weakly and ends once it is gone."""
        handlers = Handlers()
        handlers.add("*", lambda event: None)
        dispatcher = Dispatcher(handlers, lambda make: None, max_backlog=10)
        thread = dispatcher.start()
        dispatcher.put(DELTA)
        del handlers
        gc.collect()  # the registry and its handles form a cycle
        dispatcher.put(DELTA)
        thread.join(10)
        assert not thread.is_alive()

    def test_failures_are_reported_and_logged_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """Each failure is reported; one traceback per handler is logged, then counts."""
        caplog.set_level(logging.DEBUG, logger="dashscope_sync")
        handlers = Handlers()

        def broken(event: ds.ServerEvent) -> None:
            raise ValueError("no")

        handlers.add("*", broken)
        reported: list[HandlerError] = []
        dispatcher = Dispatcher(handlers, lambda make: reported.append(make()), max_backlog=100)
        thread = dispatcher.start()
        for _ in range(12):
            dispatcher.put(DELTA)
        dispatcher.stop()
        thread.join(10)
        assert len(reported) == 12
        assert all(isinstance(error.__cause__, ValueError) for error in reported)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1
        assert any("has failed 10 times" in r.message for r in caplog.records)
        assert any("failed 12 times in this session" in r.message for r in caplog.records)


def test_a_trimmed_tool_call_record_is_kept_in_its_place() -> None:
    """Trimming the backlog drops events but never a ToolCall record, which keeps its order."""
    from dashscope_sync._core.dispatch import TOOL_CALL_KEY

    handlers = Handlers()
    seen: list[str] = []
    handlers.add("response.text.delta", lambda event: seen.append(event.delta))
    handlers.add(TOOL_CALL_KEY, lambda call: seen.append(call.name))
    dispatcher = Dispatcher(handlers, lambda make: None, max_backlog=3)
    events = [decode(f'{{"type":"response.text.delta","delta":"{n}"}}'.encode()) for n in range(5)]
    dispatcher.put(events[0], seq=0)
    dispatcher.put_record(ds.ToolCall(name="ping", call_id="c", arguments={}, raw_arguments="{}"))
    for seq in range(1, 5):  # the record reaches the front and is trimmed there
        dispatcher.put(events[seq], seq=seq)
    thread = dispatcher.start()
    dispatcher.stop()
    thread.join(10)
    assert dispatcher.dropped == 2
    assert seen == ["ping", "2", "3", "4"]


def test_a_record_trimmed_while_a_pool_thread_takes_the_next_event_still_goes_first() -> None:
    """A pool task that takes the next event while the reader is moving a ToolCall record off
    the queue's front runs the record's handlers before that event's, not after or never."""
    import linecache
    import sys
    import types

    from dashscope_sync._core.dispatch import TOOL_CALL_KEY

    handlers = Handlers()
    seen: list[str] = []
    handlers.add("response.text.delta", lambda event: seen.append(event.delta))
    handlers.add(TOOL_CALL_KEY, lambda call: seen.append(call.name))
    tasks: list[Callable[[], None]] = []

    class Pool:  # the test's thread hands the task to a thread of its own, below
        closed = False

        def submit(self, task: Callable[[], None]) -> None:
            tasks.append(task)

    dispatcher = Dispatcher(handlers, lambda make: None, max_backlog=1, pool=Pool())
    events = [decode(f'{{"type":"response.text.delta","delta":"{n}"}}'.encode()) for n in range(2)]
    dispatcher.put(events[0], seq=0)
    dispatcher.put_record(ds.ToolCall(name="ping", call_id="c", arguments={}, raw_arguments="{}"))
    drained = threading.Event()
    drain = tasks.pop()

    def pool_thread() -> None:
        drain()
        drained.set()

    def run_pool_mid_trim(frame: types.FrameType, event: str, _arg: object) -> object:
        # On put()'s line that moves the record to _ahead (popped, not yet there):
        # the pool thread takes the next event now.
        if (
            event == "line"
            and not drained.is_set()
            and "self._ahead.append" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        ):
            threading.Thread(target=pool_thread).start()
            # Long enough for the pool thread to run the event's handlers if it may
            # (it did so at once before the fix); with the fix it waits for this put.
            drained.wait(1.0)
        return run_pool_mid_trim if event == "call" or frame.f_code.co_name == "put" else None

    previous = sys.gettrace()  # a coverage tool's, if any
    sys.settrace(
        lambda frame, event, arg: run_pool_mid_trim if frame.f_code.co_name == "put" else None
    )
    try:
        dispatcher.put(events[1], seq=1)  # trims event 0, then the record at the front
    finally:
        sys.settrace(previous)
    assert drained.wait(10)
    while tasks:  # a drain the record rescheduled, if any
        tasks.pop()()
    assert seen == ["ping", "1"]


class TestByteBounds:
    def test_pull_buffer_drops_the_oldest_past_its_bytes(self) -> None:
        """Past max_buffered_bytes the oldest events go and are counted; reads give their bytes back; the newest always stays."""
        mailbox = Mailbox(100, 1000)
        for _ in range(10):
            mailbox.deliver(DELTA, 0.0, 300)
        assert (len(mailbox.buffer), mailbox.buffered_bytes, mailbox.dropped_events) == (3, 900, 7)
        mailbox.next_event(Deadline(1.0), "recv()")
        assert mailbox.buffered_bytes == 600
        mailbox.deliver(DELTA, 0.0, 5000)  # over the bound on its own: kept, alone
        assert (len(mailbox.buffer), mailbox.buffered_bytes) == (1, 5000)

    def test_no_byte_bound_counts_events_only(self) -> None:
        """With max_buffered_bytes None only the event bound applies."""
        mailbox = Mailbox(5, None)
        for _ in range(10):
            mailbox.deliver(DELTA, 0.0, 1 << 30)
        assert (len(mailbox.buffer), mailbox.dropped_events) == (5, 5)

    def test_handler_backlog_drops_the_oldest_past_its_bytes(self) -> None:
        """Past max_backlog_bytes the oldest events waiting for handlers are dropped and counted."""
        dispatcher = Dispatcher(
            Handlers(), lambda make: None, max_backlog=100, max_backlog_bytes=1000
        )
        for _ in range(10):
            dispatcher.put(DELTA, 300)  # no handler thread: nothing is taken
        assert dispatcher.dropped == 7

    def test_the_bound_is_checked(self) -> None:
        """max_buffered_bytes takes a positive whole number or None; 64 MiB by default."""
        assert ds.RealtimeConfig().max_buffered_bytes == 64 << 20
        assert ds.RealtimeConfig(max_buffered_bytes=None).max_buffered_bytes is None
        for bad in (0, -1, 1.5, "1", True):
            with pytest.raises(ds.ConfigError, match="max_buffered_bytes"):
                ds.RealtimeConfig(max_buffered_bytes=bad)  # type: ignore[arg-type]
