"""The response side of one connection: streaming threads, cancels and test plans.

:class:`ResponseRunner` streams each response on a thread of its own, so that
a ``response.cancel``, a barge-in or the client going away is read and acted
on while deltas are still flowing. Responses are serialised: each thread
first joins the previous one. :class:`ResponsePlan` is how a test knob
(``script_response``, ``fail_next_response``, ``finish_next_response``) bends
the next response.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from ._response import Stream
from ._session import JSONDict, server_event

__all__ = ["ResponsePlan", "ResponseRunner"]

logger = logging.getLogger("dashscope_sync.testing")

CLIENT_CANCELLED = "client_cancelled"
TURN_DETECTED = "turn_detected"


@dataclass(frozen=True)
class ResponsePlan:
    """How one response departs from the built-in simulation.

    Attributes:
        script: Frames to send instead of the simulated response.
        error: An ``error`` object to send after ``after_deltas`` deltas,
            after which the response never finishes (until cancelled or the
            connection ends).
        after_deltas: Stop before the delta that would exceed this count
            (None: send the whole body).
        status: Final ``response.done`` status when not failing with ``error``.
        status_details: ``status_details`` of that ``response.done``.
    """

    script: tuple[JSONDict, ...] | None = None
    error: JSONDict | None = None
    after_deltas: int | None = None
    status: str = "completed"
    status_details: JSONDict | None = field(default=None)


_DEFAULT_PLAN = ResponsePlan()


@dataclass
class _Active:
    stream: Stream
    plan: ResponsePlan
    # Set by response.cancel, a barge-in, a server shutdown or the end of the
    # connection; the streaming thread checks it before every frame and sleeps
    # on it between deltas.
    cancel: threading.Event
    reason: str = CLIENT_CANCELLED


class ResponseRunner:
    """Start, pace, cancel and finish the responses of one connection.

    Thread safety: every method may be called from any thread.

    Args:
        send: Sends one frame to the client (blocks while the connection is
            stalled; raises ``ConnectionClosed`` once it is closed).
        delta_delay: Seconds to wait after each delta.
        name: Thread name prefix.
    """

    def __init__(self, send: Callable[[JSONDict], None], *, delta_delay: float, name: str) -> None:
        self._send = send
        self._delta_delay = delta_delay
        self._name = name
        # Guards every attribute below. Never held while sending.
        self._lock = threading.Lock()
        self._active: list[_Active] = []
        self._thread: threading.Thread | None = None
        self._running = 0
        self._started = 0
        self._finish_pending = False

    @property
    def in_progress(self) -> bool:
        """Whether a response is streaming (or waiting its turn to)."""
        with self._lock:
            return bool(self._active)

    def start(self, stream: Stream, plan: ResponsePlan | None) -> None:
        """Stream ``stream`` on a new thread, after any response still running.

        The caller decides whether a response may start (a client
        ``response.create`` may not while one is active; an automatic VAD
        response queues up behind it).
        """
        with self._lock:
            active = _Active(stream, plan or _DEFAULT_PLAN, threading.Event())
            self._active.append(active)
            self._started += 1
            thread = threading.Thread(
                target=self._run,
                args=(active, self._thread),
                name=f"{self._name}-{self._started}",
                daemon=True,
            )
            self._thread = thread
            self._running += 1
            thread.start()

    def cancel(self, reason: str = CLIENT_CANCELLED, *, every: bool = False) -> bool:
        """Cancel the oldest active response (or ``every`` one) with ``reason``.

        ``response.cancel`` stops the response in progress; a barge-in stops
        the queued automatic ones too.

        Returns:
            False if no response was left to cancel.
        """
        with self._lock:
            targets = [active for active in self._active if not active.cancel.is_set()]
            if not every:
                targets = targets[:1]
            for active in targets:
                active.reason = reason
        for active in targets:
            active.cancel.set()
        return bool(targets)

    def finish_when_idle(self) -> bool:
        """For ``session.finish``: True to answer now, else after the last ``response.done``."""
        with self._lock:
            if self._running:
                self._finish_pending = True
                return False
            return True

    def stop(self) -> None:
        """Cancel everything (server shutdown or end of the connection)."""
        with self._lock:
            targets = list(self._active)
        for active in targets:
            active.cancel.set()

    def latest_thread(self) -> threading.Thread | None:
        """The most recent response thread (it joins all earlier ones first)."""
        with self._lock:
            return self._thread

    # ------------------------------------------------------------------
    # Response thread

    def _deactivate(self, active: _Active) -> None:
        with self._lock:
            if active in self._active:
                self._active.remove(active)

    def _run(self, active: _Active, previous: threading.Thread | None) -> None:
        try:
            # The previous thread may still be sending its response.done.
            if previous is not None:
                previous.join()
            self._stream(active)
        except ConnectionClosed:
            pass  # the client went away mid-response; nothing to report
        except Exception:
            logger.exception("%s: response stream failed", self._name)
        finally:
            self._deactivate(active)
            with self._lock:
                self._running -= 1
                send_finished = self._finish_pending and not self._running
                if send_finished:
                    self._finish_pending = False
            if send_finished:
                with contextlib.suppress(ConnectionClosed):
                    self._send(server_event("session.finished"))

    def _stream(self, active: _Active) -> None:
        stream, plan, cancel = active.stream, active.plan, active.cancel
        created = stream.created_event()
        if created is not None:
            self._send(created)
        deltas = 0
        stopped = False
        for frame, is_delta in stream.body_frames():
            if cancel.is_set():
                break
            if is_delta and plan.after_deltas is not None and deltas >= plan.after_deltas:
                stopped = True
                break
            if frame.get("type") == "response.done":
                # A script's own response.done: the response is over for the client.
                self._deactivate(active)
            self._send(frame)
            if is_delta:
                deltas += 1
                if self._delta_delay > 0:
                    cancel.wait(self._delta_delay)
        if not cancel.is_set() and plan.error is not None:
            error = copy.deepcopy(plan.error)
            error.setdefault("type", "server_error")
            self._send(server_event("error", error=error))
            # Like the real service after an inference failure: the response
            # never finishes by itself. A cancel (or the end of the
            # connection) still closes it.
            cancel.wait()
        if cancel.is_set():
            status: str = "cancelled"
            details: JSONDict | None = {"type": "cancelled", "reason": active.reason}
            stopped = True
        else:
            status, details = plan.status, plan.status_details
        for frame in stream.owed_done_frames() if stopped else ():
            self._send(frame)
        # Cleared before response.done goes out, so a client that answers
        # response.done with response.create is never told a response is active.
        self._deactivate(active)
        done = stream.done_event(status, details)
        if done is not None:
            self._send(done)
