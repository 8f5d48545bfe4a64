"""One accepted client connection of the local realtime server.

:class:`LocalConnection` runs the per-connection protocol state machine on the
websockets handler thread and streams responses on a thread of their own, so
that a ``response.cancel`` (or the client going away) is read and acted on
while deltas are still flowing. The pure rules live in ``_session``,
``_state``, ``_vad`` and ``_response``, the response threads in ``_responder``;
this module adds the socket plumbing, the keepalive and the test knobs that
act on one connection (stall, drop, close, extra frames).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .._wire.families import ModelFamily
from ._asr import AsrState, CloseConnection, is_asr_model
from ._handshake import RequestHeaders, parse_target, peer_text
from ._responder import CLIENT_CANCELLED, TURN_DETECTED, ResponsePlan, ResponseRunner
from ._response import ScriptedStream, Stream
from ._session import (
    ClientEventError,
    JSONDict,
    error_event,
    new_id,
    server_event,
)
from ._state import AutoResponse, BargeIn, ProtocolState, Step
from ._transport import StallableServerConnection
from ._tts import Synthesis, TtsState, is_tts_model

__all__ = [
    "ConnectionHost",
    "ConnectionSettings",
    "LocalConnection",
    "Override",
    "ReplySpec",
]

logger = logging.getLogger("dashscope_sync.testing")

ReplySpec = list[JSONDict] | Callable[[JSONDict], list[JSONDict]] | None
"""Scripted answer to a client event: frames, a function of the event, or None (swallow)."""

# Deltas are far too many to log one by one, and their payload is base64 audio.
_DELTA_TYPES = frozenset(
    {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.text.delta",
        "response.function_call_arguments.delta",
    }
)


# Policy violation: the references do not say how the service closes (PROTOCOL.md Q1).
_UNKNOWN_MODEL_CODE = 1008
_AnyStep = Step | Synthesis | CloseConnection
"""A step of any dialect's state: the Omni ones, a TTS synthesis, or an ASR close."""


def _dumps(frame: JSONDict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Override:
    """What the server does instead of its built-in answer to one client event."""

    reply: ReplySpec = None
    error: JSONDict | None = None
    echo_event_id: bool = True


@dataclass(frozen=True)
class ConnectionSettings:
    """Per-server settings that every connection reads (immutable)."""

    chunk_ms: int
    delta_delay: float
    support_session_finish: bool
    max_session_seconds: float | None
    expire_close_code: int
    expire_close_reason: str
    server_vad: bool = False
    reply_audio: str = "speech"
    strict_names: bool = True
    tts_close_after_finish: bool = True
    leading_silence_ms: int = 0


class ConnectionHost(Protocol):
    """What a connection needs from the server that owns it."""

    @property
    def reply_delay(self) -> float: ...

    def _connection_opened(self, connection: LocalConnection) -> bool: ...

    def _connection_started(self, connection: LocalConnection, refusal: str | None) -> None: ...

    def _connection_closed(self, connection: LocalConnection) -> None: ...

    def _record_received(self, connection: LocalConnection, frame: JSONDict) -> None: ...

    def _take_override(self, event_type: str) -> Override | None: ...

    def _take_response_plan(self) -> ResponsePlan | None: ...


class LocalConnection:
    """The server side of one accepted WebSocket connection.

    Get it from :meth:`LocalRealtimeServer.wait_for_connection` or
    :attr:`LocalRealtimeServer.connections`; it is not created directly.

    Thread safety: every public method and property may be used from any
    thread while the server's own threads serve the connection.

    Attributes:
        path: The request path (``/api-ws/v1/realtime``).
        query: Query parameters of the upgrade request.
        headers: Request headers, with case-insensitive lookup.
        model: The ``model`` query parameter.
        session_id: The ``sess_...`` id announced in ``session.created``.
        conversation_id: The ``conv_...`` id used in responses.
    """

    def __init__(
        self,
        ws: StallableServerConnection,
        host: ConnectionHost,
        settings: ConnectionSettings,
        *,
        ping_interval: float | None,
        ping_timeout: float | None,
    ) -> None:
        request = ws.request
        assert request is not None, "the handler only runs after the handshake"
        self.path, self.query = parse_target(request.path)
        self.headers = RequestHeaders(request.headers.raw_items())
        self.model = self.query.get("model", "")
        self._ws = ws
        self._host = host
        self._settings = settings
        # The gate of the stall knob, shared with the socket proxy: cleared while
        # stalled, it holds the reader (no pongs), the event handler and every
        # frame the server would send on its own. Set on resume and on close.
        self._running = ws.gated_socket.readable
        # Set when the handler thread finished with the connection (wait_closed).
        self._finished = threading.Event()
        # Set when the server closes or drops this connection, to cut a reply
        # delay short instead of holding up the shutdown.
        self._interrupted = threading.Event()

        # Guards every mutable attribute below. Never held while sending, so a
        # slow or stalled client cannot block the other threads' bookkeeping.
        self._lock = threading.Lock()
        # Signalled (with _lock) on close, stall/resume and keepalive changes;
        # the keepalive thread waits on it.
        self._cond = threading.Condition(self._lock)
        self._state = ProtocolState(
            self.model,
            chunk_ms=settings.chunk_ms,
            server_vad=settings.server_vad,
            reply_audio=settings.reply_audio,
            leading_silence_ms=settings.leading_silence_ms,
            strict_names=settings.strict_names,
        )
        # Qwen-ASR-Realtime models get a recognition session, which answers every event.
        self._asr = (
            AsrState(self.model, server_vad=settings.server_vad)
            if is_asr_model(self.model)
            else None
        )
        self.session_id: str = (self._asr or self._state).session["id"]
        self.conversation_id = self._state.conversation_id
        # Qwen-TTS-Realtime speaks a dialect of its own (text in, audio out):
        # its state replaces the Omni one for every client event.
        self._tts = (
            TtsState(self.model, session_id=self.session_id, chunk_ms=settings.chunk_ms)
            if is_tts_model(self.model)
            else None
        )
        self._responder = ResponseRunner(
            self._send_frame,
            delta_delay=settings.delta_delay,
            name=f"dashscope-local-response-{self.session_id}",
        )
        self._received: list[JSONDict] = []
        self._session_created_sent = False
        self._closed = False
        self._stalled = False
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._keepalive_generation = 0
        self._keepalive_thread: threading.Thread | None = None
        self._aux_threads: list[threading.Thread] = []

        state = self._state
        # Handlers of the input side return the steps to take (under _lock).
        self._state_handlers: dict[str, Callable[[JSONDict], Sequence[_AnyStep]]] = {
            "session.update": state.session_update,
            "input_audio_buffer.append": state.audio_append,
            "input_audio_buffer.commit": state.audio_commit,
            "input_audio_buffer.clear": state.audio_clear,
            "input_image_buffer.append": state.image_append,
            "conversation.item.create": state.item_create,
            "conversation.item.retrieve": state.item_retrieve,
            "conversation.item.delete": state.item_delete,
        }
        # Handlers that start, stop or wait for responses send for themselves.
        self._handlers: dict[str, Callable[[JSONDict], None]] = {
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "session.finish": self._on_session_finish,
        }
        if self._tts is not None:
            tts = self._tts
            self._state_handlers = {
                "session.update": tts.session_update,
                "input_text_buffer.append": tts.text_append,
                "input_text_buffer.commit": tts.text_commit,
                "input_text_buffer.clear": tts.text_clear,
            }
            # response.cancel is not documented for TTS, but the official SDK
            # sends it (cancel_response): it stops the response streaming.
            self._handlers = {
                "response.cancel": self._on_response_cancel,
                "session.finish": self._on_tts_finish,
            }

        if self._asr is not None:
            self._state_handlers = dict(self._asr.handlers())
            self._handlers = {}

    @property
    def peer(self) -> str:
        """The client's address, ``HOST:PORT``."""
        return peer_text(self._ws.remote_address)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<LocalConnection {self.session_id} model={self.model!r} {state}>"

    # ------------------------------------------------------------------
    # Public state

    @property
    def is_open(self) -> bool:
        """Whether the WebSocket is open (not closing or closed)."""
        return self._ws.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        """The code of the client's close frame once closed (1006 without one), else None."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the client's close frame once closed, else None."""
        return self._ws.close_reason

    @property
    def received(self) -> list[JSONDict]:
        """Decoded client frames of this connection, in arrival order (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def session(self) -> JSONDict:
        """The current session configuration (a deep copy)."""
        with self._lock:
            if self._tts is not None:
                return copy.deepcopy(self._tts.session)
            return copy.deepcopy((self._asr or self._state).session)

    @property
    def last_committed_audio(self) -> bytes:
        """The PCM16 bytes of the most recent ``input_audio_buffer.commit``."""
        with self._lock:
            return bytes((self._asr or self._state).last_committed_audio)

    @property
    def conversation(self) -> list[JSONDict]:
        """The conversation's items in order, as the server keeps them (copies):
        user audio and text, each response's output (its content as sent, so
        a cancelled reply holds only what went out), items created with
        ``previous_item_id`` at their place, deleted ones gone."""
        with self._lock:
            return self._state.conversation

    @property
    def response_in_progress(self) -> bool:
        """Whether a response is being streamed (or queued behind one)."""
        return self._responder.in_progress

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the server has finished with this connection.

        Returns:
            True if it finished, False if ``timeout`` elapsed first.
        """
        return self._finished.wait(timeout)

    # ------------------------------------------------------------------
    # Knobs

    def fail_next_transcription(self, error: JSONDict | None = None) -> None:
        """Make the next turn of this Qwen-ASR-Realtime session fail.

        It ends with ``conversation.item.input_audio_transcription.failed``
        carrying ``error`` (default: a simulated ``server_error``) instead of
        ``.completed``. Calls queue up, one per turn.

        Raises:
            RuntimeError: If the connection's model is not an ASR model.
        """
        if self._asr is None:
            raise RuntimeError(f"{self.model!r} is not a Qwen-ASR-Realtime model")
        if error is None:
            error = {
                "code": "InternalError",
                "message": "simulated transcription failure (fail_next_transcription)",
                "param": None,
            }
        with self._lock:
            self._asr.fail_next_transcription(error)

    def send(self, frame: JSONDict) -> None:
        """Send an extra JSON event, adding a fresh ``event_id`` if it has none.

        Not held back by :meth:`stall`: the test asked for it explicitly.

        Raises:
            websockets.exceptions.ConnectionClosed: If the connection is closed.
        """
        if "event_id" not in frame:
            frame = {"event_id": new_id("event_"), **frame}
        self._ws.send(_dumps(frame))
        self._after_send(frame)

    def send_text(self, text: str) -> None:
        """Send a raw text frame (for example invalid JSON)."""
        self._ws.send(text)

    def send_binary(self, data: bytes) -> None:
        """Send a binary frame (which the protocol never uses)."""
        self._ws.send(bytes(data))

    def stall(self) -> None:
        """Stop reading, answering and streaming, without closing the socket.

        The socket is no longer read, so websockets cannot even answer pings:
        to the client this looks like a hung server, and its keepalive should
        detect a dead peer. Server keepalive pings pause too.
        """
        self._running.clear()
        with self._cond:
            self._stalled = True
            self._keepalive_generation += 1
            self._cond.notify_all()
        logger.debug("connection %s: stalled", self.session_id)

    def resume(self) -> None:
        """Undo :meth:`stall`: buffered client bytes are then read and answered."""
        with self._cond:
            self._stalled = False
            self._keepalive_generation += 1
            self._cond.notify_all()
        self._running.set()
        logger.debug("connection %s: resumed", self.session_id)

    def close(self, code: int = 1000, reason: str = "", *, wait: bool = False) -> None:
        """Start a proper closing handshake with ``code`` and ``reason``.

        A stalled connection is resumed first, since the handshake needs the
        client's close frame to be read.

        Args:
            code: WebSocket close code.
            reason: Close reason.
            wait: Block until the handshake completes (the client must be
                reading for that). By default the close runs on a helper
                thread, so a test can call this and then read from its client.
        """
        self.resume()
        self._interrupted.set()
        if wait:
            self._close_quietly(code, reason)
            return
        thread = threading.Thread(
            target=self._close_quietly,
            args=(code, reason),
            name=f"dashscope-local-close-{self.session_id}",
            daemon=True,
        )
        # Started under the lock: join() snapshots _aux_threads under it, and a
        # listed thread that has not started yet cannot be joined.
        with self._lock:
            self._aux_threads.append(thread)
            thread.start()

    def drop(self) -> None:
        """Cut the TCP connection abruptly, with no close frame (the client sees 1006)."""
        self._interrupted.set()
        self._running.set()
        with contextlib.suppress(OSError):  # already disconnected
            self._ws.gated_socket.raw.shutdown(socket.SHUT_RDWR)
        self._ws.close_socket()
        logger.debug("connection %s: dropped", self.session_id)

    def set_keepalive(self, ping_interval: float | None, ping_timeout: float | None) -> None:
        """Send server pings every ``ping_interval`` seconds (None: no pings).

        If no pong arrives within ``ping_timeout`` seconds (None: never give
        up) the server closes with 1011, as websockets' own keepalive does.
        """
        with self._cond:
            self._ping_interval = ping_interval
            self._ping_timeout = ping_timeout
            self._keepalive_generation += 1
            self._cond.notify_all()
            start = (
                ping_interval is not None and self._keepalive_thread is None and not self._closed
            )
            if start:
                self._keepalive_thread = threading.Thread(
                    target=self._keepalive,
                    name=f"dashscope-local-keepalive-{self.session_id}",
                    daemon=True,
                )
                self._keepalive_thread.start()

    # ------------------------------------------------------------------
    # Server-facing helpers

    def send_session_created(self) -> None:
        """Send ``session.created`` unless it was already sent (idempotent)."""
        with self._lock:
            if self._session_created_sent or self._closed:
                return
            self._session_created_sent = True
            if self._tts is not None:
                event = self._tts.session_created()
            else:
                event = (self._asr or self._state).session_created()
        with contextlib.suppress(ConnectionClosed):
            self._send_frame(event)

    def cancel_for_shutdown(self) -> None:
        """Stop streaming and unblock every wait, ahead of a server shutdown."""
        self._responder.stop()
        self._interrupted.set()
        self.resume()

    def join(self, timeout: float | None = None) -> bool:
        """Join every thread serving this connection (after it was closed).

        Returns:
            True if all of them finished within ``timeout`` (per thread).
        """
        with self._lock:
            threads = [self._keepalive_thread, *self._aux_threads]
        threads += [self._responder.latest_thread(), self._ws.recv_events_thread]
        for thread in threads:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
        return not any(thread is not None and thread.is_alive() for thread in threads)

    def wait_streams(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the response thread; True if it is done."""
        thread = self._responder.latest_thread()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------
    # Handler thread

    def serve(self) -> None:
        """Run the connection until it closes (on the websockets handler thread)."""
        try:
            send_created = self._host._connection_opened(self)
            refusal = self._state.rules.model_error()
            self._host._connection_started(self, None if refusal is None else refusal.message)
            if refusal is not None:
                # No session for a model the service does not serve: say why, then close.
                self._send_frame(refusal.to_event(None))
                self._close_quietly(_UNKNOWN_MODEL_CODE, "unknown model")
                return
            if send_created:
                self.send_session_created()
            self.set_keepalive(self._ping_interval, self._ping_timeout)
            max_seconds = self._settings.max_session_seconds
            deadline = None if max_seconds is None else time.monotonic() + max_seconds
            while True:
                timeout = None
                if deadline is not None:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        self._expire()
                        return
                try:
                    message = self._ws.recv(timeout)
                except TimeoutError:
                    continue
                # Frames already queued by websockets must wait out a stall too.
                self._running.wait()
                self._handle(message)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection %s: unexpected error in the local server", self.session_id)
        finally:
            self._finish()

    def _expire(self) -> None:
        code, reason = self._settings.expire_close_code, self._settings.expire_close_reason
        logger.debug("connection %s: session expired, closing with %d", self.session_id, code)
        self._ws.close(code, reason)

    def _finish(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._responder.stop()
        # A stalled connection must not keep its senders waiting forever.
        self._running.set()
        self._finished.set()
        stream_thread = self._responder.latest_thread()
        if stream_thread is not None:
            stream_thread.join()
        self._host._connection_closed(self)
        logger.debug("connection %s: finished (code=%s)", self.session_id, self._ws.close_code)

    def _send_frame(self, frame: JSONDict) -> None:
        self._running.wait()
        # Logged before the send, so that a client holding the frame can rely
        # on the record being there (the send only fails on a closed socket).
        if frame["type"] not in _DELTA_TYPES:
            logger.debug("connection %s: sent %s", self.session_id, frame["type"])
        self._ws.send(_dumps(frame))
        self._after_send(frame)

    def _after_send(self, frame: JSONDict) -> None:
        """Qwen-Audio ends the connection after ``server_error``, TTS after ``session.finished``."""
        if frame.get("type") in ("conversation.item.created", "response.done"):
            with self._lock:
                self._state.record_sent(frame)
        if (
            self._tts is not None
            and self._settings.tts_close_after_finish
            and frame.get("type") == "session.finished"
        ):
            # The client-events page and the SDK say the server closes once the
            # remaining audio is out (SPEECH_FAMILIES.md §A5). On a helper
            # thread, like the close below.
            self.close(1000, "session finished", wait=False)
            return
        if not self._state.rules.server_error_ends or frame.get("type") != "error":
            return
        error = frame.get("error")
        if isinstance(error, dict) and error.get("type") == "server_error":
            logger.debug("connection %s: server_error ends the session", self.session_id)
            # On a helper thread: the sender (a test, a response) must not
            # wait here for the client to read the close frame.
            self.close(1011, "server_error", wait=False)

    def _close_quietly(self, code: int, reason: str) -> None:
        try:
            self._ws.close(code, reason)
        except Exception:  # close() is best effort; the peer may be gone already
            logger.debug("connection %s: close failed", self.session_id, exc_info=True)

    def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self._send_frame(
                error_event(
                    "invalid_request_error",
                    "invalid_json",
                    "Binary frames are not supported: send JSON text frames.",
                )
            )
            return
        try:
            frame = json.loads(message)
        except ValueError as exc:
            self._send_frame(
                error_event("invalid_request_error", "invalid_json", f"Invalid JSON: {exc}")
            )
            return
        if not isinstance(frame, dict):
            self._send_frame(
                error_event("invalid_request_error", "invalid_json", "Expected a JSON object.")
            )
            return
        with self._lock:
            self._received.append(frame)
        self._host._record_received(self, frame)
        event_id = frame.get("event_id")
        client_event_id = event_id if isinstance(event_id, str) else None
        event_type = frame.get("type")
        if not isinstance(event_type, str):
            self._send_frame(
                error_event(
                    "invalid_request_error",
                    "missing_type",
                    "Missing or invalid 'type': every client event needs a string type.",
                    param="type",
                    client_event_id=client_event_id,
                )
            )
            return
        logger.debug("connection %s: received %s", self.session_id, event_type)
        delay = self._host.reply_delay
        if delay > 0:
            self._interrupted.wait(delay)
        override = self._host._take_override(event_type)
        try:
            if override is not None:
                self._apply_override(override, frame, client_event_id)
                return
            if not self._state.rules.takes_event(event_type):
                # Known to other families, not listed for this one (as Omni 3.5
                # answers session.finish).
                raise ClientEventError(
                    f"invalid event type: {event_type}", code="invalid_event_type", param="type"
                )
            state_handler = self._state_handlers.get(event_type)
            if state_handler is not None:
                with self._lock:
                    steps = state_handler(frame)
                self._take_steps(steps)
                return
            handler = self._handlers.get(event_type)
            if handler is None:
                raise ClientEventError(
                    f"invalid event type: {event_type}", code="invalid_event_type", param="type"
                )
            handler(frame)
        except ClientEventError as exc:
            self._send_frame(exc.to_event(client_event_id))

    def _apply_override(
        self, override: Override, frame: JSONDict, client_event_id: str | None
    ) -> None:
        if override.error is not None:
            error = copy.deepcopy(override.error)
            if override.echo_event_id and client_event_id is not None:
                error["event_id"] = client_event_id
            self._send_frame(server_event("error", error=error))
            return
        reply = override.reply
        if callable(reply):
            try:
                frames = reply(frame)
            except Exception as exc:
                logger.exception("scripted reply to %s failed", frame.get("type"))
                raise ClientEventError(
                    f"Scripted reply failed: {exc!r}",
                    code="internal_error",
                    error_type="server_error",
                ) from exc
        else:
            frames = reply or []
        for item in frames:
            out = item if "event_id" in item else {"event_id": new_id("event_"), **item}
            self._send_frame(out)

    # ------------------------------------------------------------------
    # Built-in handling of response.* and session.finish (handler thread)

    def _take_steps(self, steps: Sequence[_AnyStep]) -> None:
        for step in steps:
            if isinstance(step, Synthesis):
                plan = self._host._take_response_plan()
                if plan is not None and plan.script is not None:
                    stream: Stream = ScriptedStream(list(plan.script), conversation_id="")
                else:
                    stream = step.stream
                self._responder.start(stream, plan)
            elif isinstance(step, BargeIn):
                if self._responder.cancel(TURN_DETECTED, every=True):
                    logger.debug("connection %s: barge-in cancels the response", self.session_id)
            elif isinstance(step, AutoResponse):
                self._start_response(None, step)
            elif isinstance(step, CloseConnection):
                self.close(step.code, step.reason)
            else:
                self._send_frame(step)

    def _start_response(self, frame: JSONDict | None, turn: AutoResponse | None = None) -> None:
        with self._lock:
            stream, plan = self._state.plan_response(
                frame,
                pieces=None if turn is None else turn.pieces,
                take_plan=self._host._take_response_plan,
            )
        self._responder.start(stream, plan)

    def _on_response_create(self, frame: JSONDict) -> None:
        # Only this thread starts responses, so the answer cannot turn stale
        # in a way that matters: an active response can only finish meanwhile.
        if self._responder.in_progress and self._state.rules.family is ModelFamily.QWEN_AUDIO:
            raise ClientEventError(
                "Cannot create response while another response is in progress.",
                code="invalid_value",
                param="response.create",
            )
        if self._responder.in_progress:
            raise ClientEventError(
                "Conversation already has an active response",
                code="conversation_already_has_active_response",
            )
        self._start_response(frame)

    def _on_response_cancel(self, frame: JSONDict) -> None:
        if not self._responder.cancel(CLIENT_CANCELLED):
            raise ClientEventError(
                "Cancellation failed: no active response found",
                code="response_cancel_not_active",
            )

    def _on_session_finish(self, frame: JSONDict) -> None:
        rules = self._state.rules
        if rules.rejects_finish:
            # Omni 3.5 answers "invalid event type"; Qwen-Audio has no finish.
            raise ClientEventError(
                "invalid event type: session.finish", code="invalid_event_type", param="type"
            )
        if not rules.answers_finish:
            return  # Omni 3.8 accepts it without an answer
        with self._lock:
            steps = self._state.flush_for_finish()
        self._take_steps(steps)
        if not self._settings.support_session_finish:
            raise ClientEventError(
                "invalid event type: session.finish", code="invalid_event_type", param="type"
            )
        # Otherwise the last response thread sends it after its response.done.
        if self._responder.finish_when_idle():
            self._send_frame(server_event("session.finished"))

    def _on_tts_finish(self, frame: JSONDict) -> None:
        assert self._tts is not None
        if not self._settings.support_session_finish:
            raise ClientEventError(
                "invalid event type: session.finish", code="invalid_event_type", param="type"
            )
        with self._lock:
            steps = self._tts.finish()
        self._take_steps(steps)
        # Otherwise the last response thread sends it after its response.done.
        if self._responder.finish_when_idle():
            self._send_frame(server_event("session.finished"))

    # ------------------------------------------------------------------
    # Keepalive thread

    def _keepalive_current(self, generation: int) -> bool:
        assert self._lock.locked()
        return not self._closed and generation == self._keepalive_generation

    def _keepalive(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._ping_interval is None or self._stalled):
                    self._cond.wait()
                if self._closed:
                    return
                generation = self._keepalive_generation
                interval, timeout = self._ping_interval, self._ping_timeout
                self._cond.wait(interval)
                if not self._keepalive_current(generation):
                    continue  # closed, or settings or stall state changed: start over
            try:
                pong = self._ws.ping(ack_on_close=True)
            except ConnectionClosed:
                return
            if timeout is None or pong.wait(timeout):
                continue
            with self._lock:
                # A stalled server cannot read pongs; that is not the client's fault.
                give_up = not self._closed and not self._stalled
            if give_up:
                logger.debug("connection %s: keepalive ping timeout", self.session_id)
                self._close_quietly(1011, "keepalive ping timeout")
                return
