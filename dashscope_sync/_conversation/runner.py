"""Tools that run themselves: the worker that runs a session's registered tools.

The state machine decides which calls of a finished reply are due (the tool
book, ``_core/tool_book.py``); the core hands each reply's calls to the
`ToolRunner`, whose thread (``dashscope_sync-tools``) never blocks the socket
reader or the handler thread. For each reply it:

1. parses and checks every call's arguments against the tool's signature
   (``schema.py``), and starts each valid call on a thread of its own, so the
   calls of one reply run concurrently;
2. waits for each up to its tool's timeout. A call that overruns is
   abandoned: Python cannot stop a thread, so it runs on by itself (its
   thread is a daemon, and ``close()`` does not wait for it) and its result
   is thrown away;
3. hands every finished call, in the reply's order, to
   `SessionCore.tool_called` (``on(ds.ToolCall)`` handlers, the program's
   `ToolError` with ``on_tool_error="raise"``), sends the outputs in that
   order, and asks for the next reply the way the family and turn mode want
   (`SessionCore.answer_tools`; the state decides, `plan_tool_answers`: under
   server VAD the last of the server's answers is followed and the others
   silenced; past `MAX_TOOL_ROUNDS`, or after an ``interrupt()``, none);
4. releases the reply's handle (`SessionCore.tools_ran`): its ``wait()``
   returns with the records.

A failure (unknown tool, arguments that do not parse or fit, an exception,
a timeout, a result that is not JSON) is sent to the model as
``{"error": "..."}`` and logged once, so the conversation never stalls. A
call of a tool the program declared by hand (``update_session(tools=...)``)
is left to the program, and then the next reply is not asked for either.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .._errors import DashScopeError
from .._fmt import seconds
from .registry import ToolEntry, ToolRegistry, tool_name
from .schema import ArgumentsError, jsonable, parse_arguments
from .tools import Tool, ToolCall

if TYPE_CHECKING:
    from .._core.core import SessionCore
    from .._core.tool_book import DueCall

__all__ = ["ToolRunner"]

logger = logging.getLogger("dashscope_sync")

#: The longest error text sent to the model or logged.
_ERROR_CHARS: Final = 500


class _Stop:
    """The end-of-queue marker."""


class _Job:
    """One call running on a thread of its own."""

    __slots__ = ("deadline", "done", "duration", "error", "exc", "result", "thread", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.done = False
        self.duration: float | None = None
        self.result: object = None
        self.exc: BaseException | None = None
        self.error: str | None = None
        self.thread: threading.Thread | None = None


class ToolRunner:
    """The tool worker of one session (see the module docstring).

    Thread safety: `submit` from the reader thread, `stop` and `join` from
    any thread; everything else runs on the worker thread.
    """

    def __init__(self, core: SessionCore, registry: ToolRegistry) -> None:
        self._core = core
        # Weak: the registry is the session's, and a tool's closure may refer
        # to the session, which must stay collectable while this thread runs.
        self._registry = weakref.ref(registry)
        # Replies' due calls, in arrival order, then the stop marker.
        self._queue: collections.deque[tuple[DueCall, ...] | _Stop] = collections.deque()
        # Guards _queue and every _Job's done/duration/result; notified when a
        # call finishes, a reply is queued, or stop() is called.
        self._changed = threading.Condition(threading.Lock())
        # Set by stop(): abandon the reply in hand and end the thread.
        self._stopping = threading.Event()
        # The worker: joined by close() (it never waits for a stuck tool, so it
        # ends at once); a daemon, as the handler thread is.
        self.thread = threading.Thread(target=self._run, name="dashscope_sync-tools", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def submit(self, calls: tuple[DueCall, ...]) -> None:
        """Queue one reply's due calls; never blocks (reader thread)."""
        with self._changed:
            self._queue.append(calls)
            self._changed.notify_all()

    def owns(self, name: str) -> bool:
        """Is a call of ``name`` a registered tool's (the core's question, under its lock)?"""
        registry = self._registry()
        # A dict lookup, atomic: the program may register a tool meanwhile.
        return registry is not None and name in registry.entries

    def stop(self) -> None:
        """Abandon what is running and end the worker; only signals."""
        self._stopping.set()
        with self._changed:
            self._queue.append(_Stop())
            self._changed.notify_all()

    def join(self, timeout: float | None) -> None:
        thread = self.thread
        if thread.ident is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # The worker thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                item = self._queue.popleft()
            if isinstance(item, _Stop) or self._stopping.is_set():
                return
            try:
                self._answer(item)
            except BaseException:  # pragma: no cover - last resort: the worker must not die
                logger.exception("answering tool calls failed")

    def _answer(self, calls: tuple[DueCall, ...]) -> None:
        core = self._core
        response_id = calls[0].response_id
        registry = self._registry()
        entries: Mapping[str, ToolEntry] = {} if registry is None else registry.entries
        accepted = core.accepted_config().get("tools")
        declared = {tool_name(w) for w in accepted} if isinstance(accepted, list) else set()
        # A call of a tool declared by hand (not registered) is the program's to answer.
        ours = [c for c in calls if c.name in entries or c.name not in declared]
        follow_up = None
        records: tuple[ToolCall, ...] = ()
        try:
            if not entries or not ours:
                return
            finished = self._run_calls(ours, entries)
            if self._stopping.is_set():
                return
            records = tuple(record for record, _ in finished)
            for record, cause in finished:
                core.tool_called(record, cause)
            outputs = [(r.call_id, r.output or "") for r in records]
            follow_up = core.answer_tools(response_id, outputs, ask_next=len(ours) == len(calls))
        except DashScopeError as exc:  # the session closed under us: nothing more to send
            logger.debug("answering the tool calls of %s stopped: %s", response_id, exc)
        finally:
            core.tools_ran(response_id, records, follow_up)

    def _run_calls(
        self, calls: list[DueCall], entries: Mapping[str, ToolEntry]
    ) -> list[tuple[ToolCall, BaseException | None]]:
        """Run a reply's calls concurrently; their records (and what a failed one
        raised), in the reply's order."""
        jobs: list[tuple[DueCall, dict[str, Any] | None, _Job]] = []
        for call in calls:
            found = entries.get(call.name)
            job = _Job(None if found is None else found.tool.timeout)
            arguments: dict[str, Any] | None = None
            if found is None:
                names = ", ".join(sorted(entries)) or "none"
                job.error = f"unknown tool {call.name!r} (the tools are: {names})"
            else:
                try:
                    arguments = parse_arguments(call.arguments)
                    args, kwargs = found.signature.bind(arguments)
                except ArgumentsError as exc:
                    job.error = f"bad arguments for {call.name}: {exc}"
                else:
                    self._start(job, found.tool, args, kwargs)
            jobs.append((call, arguments, job))
        started = [job for _, _, job in jobs if job.thread is not None]
        self._wait(started)
        for job in started:
            if job.done and job.thread is not None:
                job.thread.join()  # ending now: it only had to return after marking done
        return [self._record(call, arguments, job) for call, arguments, job in jobs]

    def _start(self, job: _Job, tool: Tool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        changed = self._changed

        def work() -> None:
            started = time.monotonic()
            try:
                result = tool.function(*args, **kwargs)
            except BaseException as exc:  # user code: whatever it raises goes to the model
                result = None
                error: BaseException | None = exc
            else:
                error = None
            with changed:
                job.result, job.exc = result, error
                job.duration = time.monotonic() - started
                job.done = True
                changed.notify_all()

        # Daemon: a call that never returns must not keep the interpreter alive.
        job.thread = threading.Thread(target=work, name=f"dashscope_sync-tool-{tool.name}")
        job.thread.daemon = True
        job.thread.start()

    def _wait(self, jobs: list[_Job]) -> None:
        """Wait for each job until it is done or past its deadline (or stop())."""
        with self._changed:
            while not self._stopping.is_set():
                now = time.monotonic()
                left = [j for j in jobs if not j.done and (j.deadline is None or j.deadline > now)]
                if not left:
                    return
                ends = [j.deadline for j in left if j.deadline is not None]
                self._changed.wait(None if not ends else min(ends) - now)

    def _record(
        self, call: DueCall, arguments: dict[str, Any] | None, job: _Job
    ) -> tuple[ToolCall, BaseException | None]:
        """The call's record, with the output the model gets; and what it raised."""
        with self._changed:
            done, result, exc, duration = job.done, job.result, job.exc, job.duration
        error = job.error
        output = None
        if error is None and not done:
            error = (
                f"{call.name} did not finish within {seconds(job.timeout)}; it was abandoned "
                "(it may still be running)"
            )
            result = None
        elif error is None and exc is not None:
            error = f"{call.name} raised {_describe(exc)}"
        if error is None:
            try:
                output = result if isinstance(result, str) else _dumps(jsonable(result))
            except (TypeError, ValueError) as bad:
                error = f"{call.name} returned a value that is not JSON-serialisable: {bad}"
                result = None
        if error is not None:
            error = _clip(error)
            output = _dumps({"error": error})
            logger.warning("tool call %s (%s) failed: %s", call.name, call.call_id, error)
        record = ToolCall(
            name=call.name,
            call_id=call.call_id,
            arguments=arguments,
            raw_arguments=call.arguments,
            result=result,
            error=error,
            duration=duration,
            response_id=call.response_id,
            output=output,
        )
        return record, exc


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception whose ``__str__`` may itself raise."""
    try:
        text = str(exc)
    except BaseException:  # user code: whatever it raises must not escape
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
