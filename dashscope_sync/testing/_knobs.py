"""Test knobs of ``LocalRealtimeServer`` that act on connections or on responses.

Kept apart from ``_server`` so that each module stays readable: these mixins
hold the public methods that queue HTTP rejections, fan out to open
connections (extra frames, stall, close, drop, keepalive) or queue plans for
the next responses (scripted, failing, ending with a status).
``LocalRealtimeServer`` inherits them all; they are documented as its methods.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

from websockets.http11 import Response

from ._connection import LocalConnection
from ._handshake import http_response
from ._responder import ResponsePlan
from ._session import JSONDict

__all__ = ["ConnectionKnobs", "HttpKnobs", "ResponseKnobs"]

logger = logging.getLogger("dashscope_sync.testing")


class HttpKnobs:
    """Knobs refusing the next HTTP requests (mixin).

    Thread safety: every method may be called from any thread.
    """

    # Provided by LocalRealtimeServer.
    _lock: threading.Lock
    _forced_rejections: collections.deque[Response]
    _http_rejections: collections.deque[Response]

    def reject_next_handshakes(
        self,
        status: int,
        body: Mapping[str, Any] | bytes | str,
        count: int = 1,
        *,
        content_type: str | None = None,
    ) -> None:
        """Refuse the next ``count`` upgrades to the realtime path with an HTTP error.

        Checked before the API key, e.g. ``reject_next_handshakes(429,
        {"code": "Throttling.RateQuota", "message": "...", "request_id": "..."})``.

        Args:
            status: HTTP status code.
            body: A mapping (sent as JSON), text or bytes (sent as is).
            count: Number of upgrades to refuse.
            content_type: Overrides the Content-Type chosen from ``body``.
        """
        with self._lock:
            for _ in range(count):
                self._forced_rejections.append(http_response(status, body, content_type))

    def reject_next_http(
        self,
        status: int,
        body: Mapping[str, Any] | bytes | str,
        count: int = 1,
        *,
        content_type: str | None = None,
    ) -> None:
        """Answer the next ``count`` plain HTTP requests (e.g. ``POST /api/v1/tokens``) so.

        Checked before the API key, like :meth:`reject_next_handshakes`, which
        is its counterpart for WebSocket upgrades; e.g. ``reject_next_http(500,
        {"code": "InternalError", "message": "...", "request_id": "..."})``.

        Args:
            status: HTTP status code.
            body: A mapping (sent as JSON), text or bytes (sent as is).
            count: Number of requests to answer this way.
            content_type: Overrides the Content-Type chosen from ``body``.
        """
        with self._lock:
            for _ in range(count):
                self._http_rejections.append(http_response(status, body, content_type))


class ConnectionKnobs:
    """Knobs acting on all open connections, or on the one given (mixin).

    Thread safety: every method may be called from any thread.
    """

    # Provided by LocalRealtimeServer.
    _lock: threading.Lock
    _connections: list[LocalConnection]
    _ping_interval: float | None
    _ping_timeout: float | None

    def _targets(self, connection: LocalConnection | None) -> list[LocalConnection]:
        if connection is not None:
            return [connection]
        with self._lock:
            return [c for c in self._connections if c.is_open]

    def send(self, frame: JSONDict, *, connection: LocalConnection | None = None) -> int:
        """Send an extra JSON event (``event_id`` added when missing).

        Returns:
            The number of connections it was sent to (closed ones are skipped).
        """
        return self._for_each(connection, lambda c: c.send(frame))

    def send_text(self, text: str, *, connection: LocalConnection | None = None) -> int:
        """Send a raw text frame, e.g. invalid JSON. Returns the number of recipients."""
        return self._for_each(connection, lambda c: c.send_text(text))

    def send_binary(self, data: bytes, *, connection: LocalConnection | None = None) -> int:
        """Send a binary frame. Returns the number of recipients."""
        return self._for_each(connection, lambda c: c.send_binary(data))

    def _for_each(
        self, connection: LocalConnection | None, action: Callable[[LocalConnection], None]
    ) -> int:
        sent = 0
        for target in self._targets(connection):
            try:
                action(target)
            except Exception:  # closed meanwhile: skip it, as documented
                logger.debug("skipping closed connection %s", target.session_id, exc_info=True)
            else:
                sent += 1
        return sent

    def stall(self, *, connection: LocalConnection | None = None) -> None:
        """Stop reading and answering on open connections, without closing them.

        Nothing is read from the socket, so not even pings are answered: a
        client keepalive sees a dead peer. Connections opened later are not
        affected. See :meth:`LocalConnection.stall`.
        """
        for target in self._targets(connection):
            target.stall()

    def resume(self, *, connection: LocalConnection | None = None) -> None:
        """Undo :meth:`stall`."""
        if connection is not None:
            connection.resume()
            return
        with self._lock:
            targets = list(self._connections)
        for target in targets:
            target.resume()

    def close_connections(
        self,
        code: int = 1000,
        reason: str = "",
        *,
        connection: LocalConnection | None = None,
        wait: bool = False,
    ) -> None:
        """Close open connections with a proper closing handshake.

        Args:
            code: Close code the client will see.
            reason: Close reason the client will see.
            connection: Only this connection.
            wait: Block until the handshakes complete (clients must be
                reading); by default they complete in the background.
        """
        for target in self._targets(connection):
            target.close(code, reason, wait=wait)

    def drop_connections(self, *, connection: LocalConnection | None = None) -> None:
        """Cut open connections abruptly (no close frame; the client sees 1006)."""
        for target in self._targets(connection):
            target.drop()

    def set_keepalive(self, ping_interval: float | None, ping_timeout: float | None = 20.0) -> None:
        """Set server pings for open and future connections (None: no pings).

        See :meth:`LocalConnection.set_keepalive`.
        """
        with self._lock:
            self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
            targets = [c for c in self._connections if c.is_open]
        for target in targets:
            target.set_keepalive(ping_interval, ping_timeout)


class ResponseKnobs:
    """Knobs queuing plans for the next responses (mixin).

    Plans form one FIFO shared by all connections: each response that
    starts, by ``response.create`` or by server VAD, takes the oldest plan.

    Thread safety: every method may be called from any thread.
    """

    # Provided by LocalRealtimeServer.
    _lock: threading.Lock
    _response_plans: collections.deque[ResponsePlan]

    def script_response(self, frames: list[JSONDict]) -> None:
        """Answer the next response with exactly ``frames`` instead of a simulated one.

        Applies to the next response started on any connection, by
        ``response.create`` or by server VAD; it consumes the user turn like
        any response. Frames are sent in order (those whose type ends with
        ``.delta`` paced by ``delta_delay``), with the ids they leave out filled
        in: ``event_id``; ``response.id``, ``object`` and ``conversation_id`` in
        ``response.created`` / ``response.done`` (a missing ``response``
        object is created); ``response_id`` on other ``response.*`` events;
        ``item.id`` on ``response.output_item.*`` and
        ``conversation.item.created``; ``item_id`` on content events. One
        response id and one item id serve the whole script. The response is
        active until the script's ``response.done`` (or its last frame); a
        cancel stops the script and, if its ``response.created`` went out,
        sends a ``response.done`` with status ``cancelled``.

        Example:
            >>> from dashscope_sync.testing import LocalRealtimeServer
            >>> with LocalRealtimeServer() as server:
            ...     server.script_response([
            ...         {"type": "response.created"},
            ...         {"type": "response.text.delta", "delta": "Hi"},
            ...         {"type": "response.done"},
            ...     ])
        """
        script = tuple(dict(frame) for frame in frames)
        with self._lock:
            self._response_plans.append(ResponsePlan(script=script))

    def fail_next_response(self, error: Mapping[str, Any], *, after_deltas: int = 0) -> None:
        """Make the next response fail mid-stream with an ``error`` event, and hang.

        The response streams as usual until ``after_deltas`` deltas (of any
        kind) were sent, then the server sends ``{"type": "error", "error":
        error}`` (``error.type`` defaults to ``server_error``) and never
        finishes the response, as the real service may after an inference
        failure (``COMMON_ERROR``): no ``*.done`` events, no ``response.done``,
        and a further ``response.create`` is refused as the response is still
        active. A ``response.cancel`` still ends it (status ``cancelled``),
        as does closing the connection. With fewer deltas than
        ``after_deltas``, the error follows the last body frame.

        Example:
            ``fail_next_response({"code": "COMMON_ERROR", "message": "<50002>
            InternalError.Algo.ModelServingError"}, after_deltas=3)``
        """
        if after_deltas < 0:
            raise ValueError(f"after_deltas must be >= 0, got {after_deltas!r}")
        plan = ResponsePlan(error=dict(error), after_deltas=after_deltas)
        with self._lock:
            self._response_plans.append(plan)

    def finish_next_response(
        self,
        status: Literal["failed", "incomplete"] = "failed",
        status_details: Mapping[str, Any] | None = None,
        *,
        after_deltas: int | None = None,
    ) -> None:
        """End the next response with ``response.done`` of this ``status``.

        Args:
            status: ``"failed"`` or ``"incomplete"``.
            status_details: ``response.status_details``; by default
                ``{"type": "failed", "error": {"type": "server_error", "code":
                "internal_error", "message": ...}}`` or ``{"type":
                "incomplete", "reason": "max_output_tokens"}``.
            after_deltas: Stop after this many deltas (sending the ``*.done``
                events still owed, with the partial text, as for a cancel);
                None streams the whole body first. Output items are
                ``incomplete`` when the body was cut short.
        """
        if status not in ("failed", "incomplete"):
            raise ValueError(f"status must be 'failed' or 'incomplete', got {status!r}")
        if after_deltas is not None and after_deltas < 0:
            raise ValueError(f"after_deltas must be >= 0, got {after_deltas!r}")
        if status_details is None:
            details: JSONDict = (
                {
                    "type": "failed",
                    "error": {
                        "type": "server_error",
                        "code": "internal_error",
                        "message": "The local server was told to fail this response.",
                    },
                }
                if status == "failed"
                else {"type": "incomplete", "reason": "max_output_tokens"}
            )
        else:
            details = dict(status_details)
        plan = ResponsePlan(after_deltas=after_deltas, status=status, status_details=details)
        with self._lock:
            self._response_plans.append(plan)
