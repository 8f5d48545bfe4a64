"""Replaying a recorded session to a client: ``LocalRealtimeServer.replay()``.

A connection accepted while a replay is set is answered from the recording
instead of the simulator, on the websockets handler thread (one thread per
connection, as for :class:`LocalConnection`; nothing else is started). The
recording is walked in order: a server frame (``"in"``) is sent once every
client frame recorded before it has been matched and its recorded gap has
passed (scaled by ``speed``), counted from whichever came last of the previous
server frame and the last of those client frames; a client frame
(``"out"``) is matched against the client's next frame by type alone. So the
recorded causality holds (a reply never comes before the request it
answered) while the client's own pacing may differ from the recording's.

A recording begun after the handshake (no ``session.created`` in it) is
preceded by a minimal ``session.created``: the recorded session id and model.

Ids: server frames keep their recorded ids (``session.created`` announces
the recorded session). The ids the client chose (each event's ``event_id``
and the ``item.id`` of a ``conversation.item.create``) differ from run to
run, so every string in a server frame equal to a recorded client id is
replaced by the id the client used in the matching frame: an ``error`` then
names the client's own event, and an item created with its own id comes back
with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from .._deadline import check_timeout
from .._errors import ConfigError, ConfigTypeError, DashScopeTimeout
from .._fmt import seconds
from ._handshake import parse_target, peer_text
from ._recording import RecordedFrame, Recording, fill_omitted
from ._session import JSONDict, error_event, server_event

__all__ = ["Replay", "ReplayDivergence", "check_speed", "serve_replay"]

logger = logging.getLogger("dashscope_sync.testing")

#: The close code after a divergence: the client broke the script it was given.
DIVERGED_CODE = 1008
DIVERGED_REASON = "replay diverged"


def check_speed(speed: object) -> float | None:
    """``speed`` as a factor > 0, or None for as fast as possible (None or ``inf``).

    Raises:
        ConfigTypeError: Not a number.
        ConfigError: Zero, negative or NaN.
    """
    if speed is None:
        return None
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise ConfigTypeError(f"speed must be a number > 0 or None, got {speed!r}")
    if math.isnan(speed) or speed <= 0:
        raise ConfigError(f"speed must be > 0 (None or inf: as fast as possible), got {speed!r}")
    return None if math.isinf(speed) else float(speed)


@attrs.frozen(kw_only=True)
class ReplayDivergence:
    """Where a client first did something other than the recording.

    Thread safety: immutable, so safe to share between threads.

    Attributes:
        index: The position (from 0) among the recording's frames of the
            first frame that differs; ``len(recording)`` past its end; None
            for a client that asked for another model.
        line: That frame's line in ``frames.jsonl``, when there is one.
        expected: The client event type the recording has there, or None
            where it has none (or, for the model check, ``"model '...'"``).
        got: The client event type the client sent, ``"<not JSON>"`` or
            ``"<no type>"`` for a frame without one, or None when the
            connection closed instead (or ``"model '...'"``).
        message: All of that in one sentence, as sent to the client in the
            ``error`` event.
    """

    index: int | None
    line: int | None
    expected: str | None
    got: str | None
    message: str


class Replay:
    """A recording the local server answers clients with; made by `LocalRealtimeServer.replay`.

    Each connection accepted while it is set (until `LocalRealtimeServer.stop_replay`
    or another ``replay()``) gets the whole recording, from its start: a run.

    Thread safety: every property and method may be used from any thread
    while the server's threads run the replay.

    Attributes:
        recording: The `Recording` replayed.
        speed: The factor applied to the recorded pacing, or None for as fast
            as possible.
    """

    def __init__(self, recording: Recording, speed: float | None) -> None:
        self.recording = recording
        self.speed = speed
        # Guards the counters, the first divergence and the progress note.
        self._lock = threading.Lock()
        # Signalled (with _lock) when a run ends; wait() waits on it.
        self._cond = threading.Condition(self._lock)
        self._runs = 0
        self._open = 0
        self._completed = 0
        self._error: ReplayDivergence | None = None
        self._where = "no client has connected yet"

    def __repr__(self) -> str:
        with self._lock:
            state = f"{self._runs} run(s), {self._open} open"
            error = "" if self._error is None else " diverged"
        speed = "as fast as possible" if self.speed is None else f"speed {self.speed:g}"
        return (
            f"<Replay {self.recording.source} ({len(self.recording)} frames, {speed}): "
            f"{state}{error}>"
        )

    @property
    def runs(self) -> int:
        """How many connections were answered from the recording so far."""
        with self._lock:
            return self._runs

    @property
    def done(self) -> bool:
        """Whether at least one run started and every run so far has ended."""
        with self._lock:
            return self._runs > 0 and self._open == 0

    @property
    def completed(self) -> int:
        """How many runs followed the recording to its end (every frame sent and matched)."""
        with self._lock:
            return self._completed

    @property
    def error(self) -> ReplayDivergence | None:
        """The first divergence of any run, or None while every run follows the recording.

        A run that ends (the client closes, the server shuts down) before the
        recording did counts as diverging there.
        """
        with self._lock:
            return self._error

    def wait(self, timeout: float | None = 10.0) -> ReplayDivergence | None:
        """Wait until `done`: a run started, and every run has ended.

        Args:
            timeout: Seconds to wait; None waits for as long as it takes.

        Returns:
            `error`: None when every run followed the recording to its end.

        Raises:
            DashScopeTimeout: Not done within ``timeout``; the message says
                where the latest run stands.
            ConfigError: ``timeout`` is negative or not a number.
        """
        timeout = check_timeout(timeout)
        with self._cond:
            if not self._cond.wait_for(lambda: self._runs > 0 and self._open == 0, timeout):
                raise DashScopeTimeout(
                    f"the replay did not end within {seconds(timeout)}: {self._where}",
                    timeout=timeout,
                )
            return self._error

    # Run bookkeeping (server threads) ---------------------------------------------

    def _run_started(self) -> None:
        with self._lock:
            self._runs += 1
            self._open += 1

    def _run_ended(self, divergence: ReplayDivergence | None) -> None:
        with self._cond:
            self._open -= 1
            if divergence is None:
                self._completed += 1
            elif self._error is None:
                self._error = divergence
            self._cond.notify_all()

    def _note(self, where: str) -> None:
        with self._lock:
            self._where = where


def serve_replay(
    replay: Replay,
    ws: ServerConnection,
    *,
    record: Callable[[JSONDict], None],
    log: Callable[[str], None],
) -> None:
    """Answer one connection from ``replay``'s recording until it closes (handler thread).

    Args:
        replay: The replay to follow.
        ws: The accepted connection.
        record: Called with each decoded client frame (the server's ``received``).
        log: Called with one line when the run starts and when it ends.
    """
    run = _Run(replay, ws, record)
    peer = peer_text(ws.remote_address)
    recording = replay.recording
    log(
        f"{peer}: replaying {recording.source} ({len(recording)} frames, model {recording.model!r})"
    )
    replay._run_started()
    divergence: ReplayDivergence | None = None
    try:
        divergence = run.serve()
    except Exception as exc:  # a bug here must end the run, not hang wait()
        logger.exception("replay of %s failed", recording.source)
        divergence = ReplayDivergence(
            index=None, line=None, expected=None, got=None, message=f"the replay failed: {exc!r}"
        )
    finally:
        replay._run_ended(divergence)
    if divergence is None:
        log(f"{peer}: the replay followed the recording to its end")
    else:
        log(f"{peer}: {divergence.message}")


class _Run:
    """One connection answered from the recording (the handler thread only)."""

    def __init__(
        self, replay: Replay, ws: ServerConnection, record: Callable[[JSONDict], None]
    ) -> None:
        self._replay = replay
        self._ws = ws
        self._record = record
        self._recording = replay.recording
        self._speed = replay.speed
        frames = self._recording.frames
        self._ins = [frame for frame in frames if frame.dir == "in"]
        self._outs = [frame for frame in frames if frame.dir == "out"]
        # For each server frame: how many client frames the recording has before it.
        self._needs: list[int] = []
        count = 0
        for frame in frames:
            if frame.dir == "out":
                count += 1
            else:
                self._needs.append(count)
        self._sent = 0
        self._matched = 0
        # When each matched client frame arrived (monotonic), by its place in _outs.
        self._matched_at: list[float] = []
        # The recorded client ids -> the ids this client used instead.
        self._ids: dict[str, str] = {}

    def serve(self) -> ReplayDivergence | None:
        assert self._ws.request is not None, "the handler runs after the handshake"
        model = parse_target(self._ws.request.path)[1].get("model", "")
        if model != self._recording.model:
            return self._diverge(
                ReplayDivergence(
                    index=None,
                    line=None,
                    expected=f"model {self._recording.model!r}",
                    got=f"model {model!r}",
                    message=(
                        f"replay diverged: the recording is of model {self._recording.model!r}, "
                        f"the client asked for {model!r}"
                    ),
                ),
                None,
            )
        if not any(frame.type == "session.created" for frame in self._ins):
            # A recording begun after the handshake: the client still waits for one.
            session = {
                "id": self._recording.session_id,
                "object": "realtime.session",
                "model": self._recording.model,
            }
            with contextlib.suppress(ConnectionClosed):
                self._ws.send(json.dumps(server_event("session.created", session=session)))
        start = time.monotonic()
        last_in_at, last_in_t = start, 0.0
        while True:
            timeout: float | None = None
            if self._sent < len(self._ins) and self._matched >= self._needs[self._sent]:
                frame = self._ins[self._sent]
                due = self._due(frame, last_in_at, last_in_t, start)
                timeout = due - time.monotonic()
                if timeout <= 0:
                    if not self._send(frame):
                        return self._closed()
                    self._sent += 1
                    last_in_at, last_in_t = due, frame.t
                    continue
            self._replay._note(self._describe())
            try:
                message = self._ws.recv(timeout)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return self._closed()
            divergence = self._match(message)
            if divergence is not None:
                return divergence

    def _out_first(self) -> bool:
        """Whether the first frame still to happen is the client's (else the server's)."""
        if self._matched == len(self._outs):
            return False
        return self._sent == len(self._ins) or (
            self._outs[self._matched].index < self._ins[self._sent].index
        )

    def _complete(self) -> bool:
        return self._sent == len(self._ins) and self._matched == len(self._outs)

    def _due(
        self, frame: RecordedFrame, last_in_at: float, last_in_t: float, start: float
    ) -> float:
        """When ``frame`` goes out: its recorded gap after the latest frame before it."""
        if self._speed is None:
            return -math.inf
        due = last_in_at + (frame.t - last_in_t) / self._speed
        needs = self._needs[self._sent]
        if needs:
            out = self._outs[needs - 1]
            due = max(due, self._matched_at[needs - 1] + (frame.t - out.t) / self._speed)
        else:
            due = max(due, start + frame.t / self._speed)
        return due

    def _send(self, recorded: RecordedFrame) -> bool:
        frame = fill_omitted(recorded.frame, recorded.omitted)
        if self._ids:
            frame = _rewrite(frame, self._ids)
        try:
            self._ws.send(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))
        except ConnectionClosed:
            return False
        return True

    def _match(self, message: str | bytes) -> ReplayDivergence | None:
        frame: Any = None
        if isinstance(message, str):
            with contextlib.suppress(ValueError):
                frame = json.loads(message)
        if isinstance(frame, dict):
            self._record(frame)
            got = frame.get("type") if isinstance(frame.get("type"), str) else "<no type>"
        else:
            frame, got = None, "<not JSON>"
        if self._matched == len(self._outs):
            index = self._outs[-1].index + 1 if self._outs else 0
            why = "the recording has no more client frames"
            return self._diverge(self._divergence(index, None, str(got), why), frame)
        expected = self._outs[self._matched]
        if got != expected.type:
            return self._diverge(self._divergence(expected.index, expected.type, str(got)), frame)
        assert frame is not None
        self._learn_ids(expected.frame, frame)
        self._matched += 1
        self._matched_at.append(time.monotonic())
        return None

    def _learn_ids(self, recorded: JSONDict, live: JSONDict) -> None:
        pairs = [(recorded.get("event_id"), live.get("event_id"))]
        old_item, new_item = recorded.get("item"), live.get("item")
        if isinstance(old_item, dict) and isinstance(new_item, dict):
            pairs.append((old_item.get("id"), new_item.get("id")))
        for old, new in pairs:
            if isinstance(old, str) and isinstance(new, str) and old and old != new:
                self._ids[old] = new

    def _closed(self) -> ReplayDivergence | None:
        if self._complete():
            return None
        protocol = self._ws.protocol
        sent, received = protocol.close_sent, protocol.close_rcvd
        if sent is not None and not protocol.close_rcvd_then_sent:
            # The server shutting down, not the client's doing: say so.
            closed = f"the server closed the connection ({sent.code})"
        elif received is not None:
            closed = f"the connection closed ({received.code})"
        else:
            closed = f"the connection was lost ({self._ws.close_code})"
        if self._out_first():
            expected = self._outs[self._matched]
            return self._divergence(expected.index, expected.type, None, closed=closed)
        pending = self._ins[self._sent]
        return self._divergence(
            pending.index,
            None,
            None,
            why=f"the recording still sends {pending.type!r} there",
            closed=closed,
        )

    def _divergence(
        self,
        index: int,
        expected: str | None,
        got: str | None,
        why: str | None = None,
        *,
        closed: str = "the connection closed",
    ) -> ReplayDivergence:
        frames = self._recording.frames
        line = frames[index].line if index < len(frames) else None
        if line is None:
            place = f"frame {index} (past the end of {self._recording.source})"
        else:
            place = f"frame {index} (line {line} of {self._recording.source})"
        if expected is not None:
            want = f"expected the client's {expected!r}"
        else:
            want = why or "expected no client frame"
        have = closed if got is None else repr(got)
        return ReplayDivergence(
            index=index,
            line=line,
            expected=expected,
            got=got,
            message=f"replay diverged at {place}: {want}, got {have}",
        )

    def _diverge(self, divergence: ReplayDivergence, frame: JSONDict | None) -> ReplayDivergence:
        """Tell the client what differs (an ``error`` event), then close."""
        event_id = None if frame is None else frame.get("event_id")
        event = error_event(
            "invalid_request_error",
            "replay_diverged",
            divergence.message,
            param="type",
            client_event_id=event_id if isinstance(event_id, str) else None,
        )
        with contextlib.suppress(ConnectionClosed):
            self._ws.send(json.dumps(event, ensure_ascii=False))
        with contextlib.suppress(Exception):  # the peer may be gone already
            self._ws.close(DIVERGED_CODE, DIVERGED_REASON)
        return divergence

    def _describe(self) -> str:
        if self._complete():
            return "every frame was sent and matched; waiting for the client to close"
        if self._out_first():
            frame = self._outs[self._matched]
            return (
                f"frame {frame.index} (line {frame.line}): waiting for the client's {frame.type!r}"
            )
        frame = self._ins[self._sent]
        return f"frame {frame.index} (line {frame.line}): about to send {frame.type!r}"


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every string that is a key of ``ids`` replaced by its value."""
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, dict):
        return {key: _rewrite(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, ids) for item in value]
    return value
