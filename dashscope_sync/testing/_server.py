"""``LocalRealtimeServer``: a loopback DashScope Qwen-Omni realtime server.

The transport is websockets' threaded server (``websockets.sync.server``):
``serve_forever()`` runs on one background thread and websockets starts one
handler thread per connection, on which :class:`LocalConnection` runs the
protocol. Plain HTTP requests (the temporary-key endpoint) are answered
before websockets sees them, by the socket wrapper (``_transport``, ``_http``).
This module owns the lifecycle, the HTTP rules and the test knobs that act
across connections (more knobs live in the mixins of ``_knobs``).
"""

from __future__ import annotations

import collections
import contextlib
import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, cast

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from .._fmt import seconds
from ._connection import (
    ConnectionSettings,
    LocalConnection,
    Override,
    ReplySpec,
)
from ._handshake import (
    API_PATH,
    REALTIME_PATH,
    HandshakeRecord,
    RequestHeaders,
    check_request,
    parse_target,
    peer_text,
)
from ._http import HttpRequest, TemporaryToken, TokenStore, route_http, serve_http
from ._knobs import ConnectionKnobs, HttpKnobs, ResponseKnobs
from ._recording import Recording
from ._replay import Replay, check_speed, serve_replay
from ._responder import ResponsePlan
from ._session import JSONDict
from ._transport import WEBSOCKETS_LOGGER, ConnectionRegistry, StallableServerConnection

__all__ = ["LocalRealtimeServer"]

logger = logging.getLogger("dashscope_sync.testing")

_DEFAULT_API_KEY = "sk-local-test"
_SHUTDOWN_CODE = 1001
_SHUTDOWN_REASON = "server shutting down"
# Server.shutdown() takes a close code and reason since websockets 17.
_SHUTDOWN_TAKES_CODE = "code" in inspect.signature(Server.shutdown).parameters


def _close_shutdown_pipe(server: Server) -> None:
    """Close the pipe websockets < 17 makes for ``shutdown()`` and never closes.

    Its ``serve_forever()`` watches the pipe; once that thread has ended,
    nothing uses it. Without this each server left two descriptors open
    (a test suite reached 1,500 in one process). websockets 17 makes it a
    socket pair it closes itself: only plain descriptors are closed here.
    """
    for name in ("shutdown_watcher", "shutdown_notifier"):
        fd = getattr(server, name, None)
        if isinstance(fd, int) and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            setattr(server, name, -1)


class LocalRealtimeServer(HttpKnobs, ConnectionKnobs, ResponseKnobs):
    """A real WebSocket server on loopback that speaks the DashScope realtime protocol.

    It implements DashScope's Qwen realtime API (``/api-ws/v1/realtime``) as
    documented: the handshake rules (401/404/400 with DashScope JSON bodies),
    ``session.created`` / ``session.update`` validation, the input audio and
    image buffers, server VAD (opt-in, see below), conversation items, and
    responses streamed with the documented event order, whose text and audio
    are simulated and say so. On the same port it serves the temporary-key
    endpoint ``POST /api/v1/tokens``. Test knobs inject errors, scripted
    replies and whole scripted responses, failures, delays, stalls, closes
    and drops. Use it to test a client through real sockets (the official
    ``dashscope`` SDK talks to it too), or to develop offline.

    What is simulated, and how:

    * Replies describe their input ("This is a simulated reply from the local
      DashScope server. I heard 1.20 seconds of audio."); committed audio is
      "transcribed" as ``[simulated transcript: 1.20 s of audio, peak -12.1
      dBFS]``; output audio (``reply_audio="speech"``) is a deterministic
      speech-like tone pattern of about 60 ms per character of the reply, at
      24 kHz. With ``reply_audio="echo"`` the reply audio is the user's
      committed audio of the turn, resampled from 16 to 24 kHz by linear
      interpolation (``resample_pcm16``), and the transcript says it is an
      echo; a turn without audio gets the speech pattern.
    * Usage is deterministic: 12.5 tokens per second of audio, one text token
      per 4 UTF-8 bytes.
    * Server VAD is energy based and runs on the audio timeline, not the
      wall clock, so its events are deterministic. It is on by default
      (``server_vad=True``), as on the real service; ``server_vad=False``
      gives a server that never sends VAD events whatever the session says,
      for tests that append speech in the default session and commit by
      hand. When on, and the session's ``turn_detection`` is not null (the
      default session has ``server_vad``), appended 16 kHz audio is cut into
      10 ms frames whose RMS level is compared with ``-45 + 25 * threshold``
      dBFS (``threshold`` in [-1, 1]: -70 dBFS at -1, -32.5 at the default
      0.5, -20 at 1). The first loud frame (one is enough) sends
      ``input_audio_buffer.speech_started`` with ``audio_start_ms`` (its
      start minus ``prefix_padding_ms``, clamped at the start of the buffer)
      and the ``item_id`` the turn will get; ``silence_duration_ms`` (rounded
      up to 10 ms) of quiet frames then send ``speech_stopped`` with
      ``audio_end_ms`` (last loud sample + silence duration), commit the
      audio from ``audio_start_ms`` to ``audio_end_ms`` (``committed``, the
      user ``conversation.item.created``, the transcription if enabled) and,
      unless ``create_response`` is false, start a response as
      ``response.create`` would (queued behind one still streaming). Both
      ``*_ms`` count from the first audio the connection appended. Between
      turns the buffer keeps only the prefix padding. An explicit
      ``input_audio_buffer.commit`` forces the turn (``speech_stopped`` if
      speech was going on, the commit, the automatic response). Barge-in:
      speech starting while a response streams (unless
      ``interrupt_response`` is false) cancels it, and any automatic response
      queued behind it, like ``response.cancel``: its ``response.done`` has
      status ``cancelled`` and ``status_details`` ``{"type": "cancelled",
      "reason": "turn_detected"}`` (a client's ``response.cancel`` gives
      ``"client_cancelled"`` and stops only the response streaming).
      Manual mode (``turn_detection: null``) never sends VAD events: a turn
      ends only with ``input_audio_buffer.commit`` (or a text
      ``conversation.item.create``) and a response starts only with
      ``response.create``. ``semantic_vad`` is treated like ``server_vad``.
    * With ``session.tools`` set, a user text naming a tool (or instructions
      containing ``"call <name>"``) gets a function call instead of a reply;
      its arguments are the first JSON object in the text, else ``{}``.
    * Qwen-TTS-Realtime (a ``qwen3-tts-*`` or ``qwen-tts-realtime*`` model
      in the URL; SPEECH_FAMILIES.md §A) speaks its own dialect. The session
      (``session.created``: ``mode`` ``server_commit``, ``response_format``
      ``pcm``, ``sample_rate`` 24000, ``voice`` ``Cherry`` except on the
      voice-design and voice-clone models) takes one ``session.update``,
      before any text; a second one, or one after text, gets "Session update
      error: session already started or finished or failed.". Each field is
      checked against the documented values and the model (voices, languages,
      formats, 8/16/24/48 kHz, ``speech_rate``/``pitch_rate`` in [0.5, 2],
      ``volume`` in [0, 100], ``bit_rate`` in [6, 510], ``instructions`` only
      on the instruct models, PCM at 24 kHz and no rate controls on the
      legacy models). ``server_commit`` speaks each complete sentence as it
      is appended (after a CJK sentence end or a newline, after ``.!?;`` and a
      space, or every 200 characters) with no ``committed`` event;
      ``input_text_buffer.commit`` (both modes) answers ``committed`` and
      speaks the buffer, or is an error on an empty buffer;
      ``input_text_buffer.clear`` answers ``cleared``. Each response:
      ``response.created``, ``output_item.added``, ``content_part.added``,
      ``response.audio.delta`` x N, ``response.audio.done``,
      ``content_part.done``, ``output_item.done``, ``response.done`` with
      ``usage.characters`` (the text's length; the legacy models report
      tokens, 50 audio tokens a second). The audio is the speech pattern, 60
      ms per character (at least 0.3 s), divided by ``speech_rate`` and scaled
      by ``volume / 50``, at the session's rate; as PCM16 or WAV always, and
      as MP3 or Ogg Opus when ``soundfile`` can encode them (else
      ``session.update`` refuses that format). Each response is one complete
      file of its format, in deltas of about ``chunk_ms`` of audio. The
      other fields (``pitch_rate``, ``bit_rate``, ``instructions``...) are
      checked and echoed but do not change the audio.
      ``response.cancel`` (sent by the official SDK, not documented) stops the
      response streaming. ``session.finish`` speaks what ``server_commit``
      still buffers (``commit`` mode drops uncommitted text), sends
      ``session.finished`` after the last ``response.done``, and closes the
      connection with 1000, as the client-events page says (unless
      ``tts_close_after_finish`` is False).

    As strict as the service: each family (from the model in the URL) gets
    only what its docs list. Another family's turn detection type, or a
    field of another family or at the wrong level (nested ``audio.*`` on
    turbo and qwen3-flash, ``translation`` outside LiveTranslate...), is an
    ``invalid_value`` error naming it; a client event the family's docs do
    not list (``input_audio_buffer.commit`` or ``response.create`` on
    LiveTranslate, which decides turns itself and translates only speech)
    is an ``invalid_event_type`` error. Unknown names are refused too, unless
    ``strict_names=False`` (see below).
    * Qwen-ASR-Realtime (``qwen3-asr-flash-realtime`` and its snapshots):
      speech recognition, no responses. ``session.created`` announces text
      only, ``pcm16`` at 16 kHz and VAD with the documented defaults
      (threshold 0.2, 800 ms of silence). ``session.update`` is taken once,
      before any audio (``input_audio_format`` pcm/opus, ``sample_rate``
      16000/8000, ``input_audio_transcription.language`` among the 27
      documented codes and ``corpus.text``, ``turn_detection`` server_vad with
      threshold in [-1, 1] and ``silence_duration_ms`` in [200, 6000], or null
      for manual mode); an out-of-range or unknown field is an
      ``invalid_value`` error naming it, and a second update gets "Session
      update error: session already started or finished or failed." and a
      close with 1007. The Omni fields the official SDK adds (``voice``,
      ``output_audio_format``, ``prefix_padding_ms``, a null
      ``input_audio_transcription.model``) are accepted. Under VAD (the same
      energy VAD as above; 8 kHz audio is upsampled onto the 16 kHz timeline)
      a turn sends ``speech_started``, an interim
      ``conversation.item.input_audio_transcription.text`` (``text``
      confirmed, ``stash`` the last two words, still provisional) per 200 ms
      of speech whenever it changed, then ``speech_stopped``, ``committed``
      (with ``previous_item_id``), ``conversation.item.created`` and
      ``.completed`` with ``language`` (configured, else detected) and
      ``emotion`` (``neutral``); ``input_audio_buffer.commit`` is refused
      there. In manual mode a commit sends ``committed``, the item, up to five
      interims and ``.completed`` (an empty buffer is an error).
      ``session.finish`` ends speech still going on (or, in manual mode,
      transcribes what was not committed), then sends ``session.finished``
      (at once when there was no speech); the client closes, and events after
      it are refused. Transcripts: the bundled demo clip gives its known words
      (those spoken within the turn, so a clip cut at its pause gives
      "Hello!" and "What is the weather like in Hangzhou today?"), audio from
      :func:`spoken_pcm16` gives the text hidden in it, digital silence gives
      ``""`` and other audio a placeholder like the one above. Opus audio
      cannot be decoded here: the VAD never hears it and a manual commit gets
      a placeholder. Other client events are an invalid event type.
      :meth:`LocalConnection.fail_next_transcription` makes the next turn
      end in ``.failed`` instead.

    Temporary API keys: ``POST /api/v1/tokens?expire_in_seconds=N`` with
    ``Authorization: Bearer <api_key>`` and no body answers 200
    ``{"token": "st-...", "expires_at": <epoch seconds>}`` (N in 1..1800,
    default 60; else 400 ``InvalidParameter``; a wrong key gets 401
    ``InvalidApiKey``). The token is then accepted in place of ``api_key`` by
    the WebSocket upgrade until ``clock() >= expires_at``; after that it gets
    401 ``InvalidApiKey`` saying it expired. A temporary key cannot mint
    keys (403 ``AccessDenied``). See :attr:`issued_tokens`,
    :attr:`http_requests` and :meth:`reject_next_http`. Every HTTP reply
    carries ``Content-Length``. Requests other than ``GET`` are read by the
    server itself (websockets before version 17 would close them unanswered),
    so they work with every supported websockets version, body or not.

    Scripting responses: :meth:`script_response` replaces the next response
    with given frames (ids filled in), :meth:`fail_next_response` makes it
    send a ``server_error`` mid-stream and never finish, and
    :meth:`finish_next_response` ends it with status ``failed`` or
    ``incomplete``. These plans queue up and apply to the next responses of
    any connection, however they start. :meth:`on_client_event` and
    :meth:`inject_error` replace the answer to any client event.

    Thread safety: every public method and property may be called from any
    thread, including while clients are connected; the server runs its own
    threads (one for accepting, one per connection, one per streaming
    response) and :meth:`close` joins all of them.

    Args:
        api_key: The key accepted in ``Authorization: Bearer <key>``
            (``bearer`` in any case). None accepts any key, or none.
        host: Interface to bind.
        port: TCP port; 0 picks a free one (read :attr:`port` after start).
        model_default: Model used by :meth:`model_url` when none is given.
        chunk_ms: Audio per ``response.audio.delta`` in milliseconds
            (100 ms of 24 kHz PCM16 is 4800 bytes).
        delta_delay: Seconds slept between streamed deltas, to simulate the
            pacing of a real model; 0 streams as fast as possible.
        send_session_created: Send ``session.created`` on connect.
        support_session_finish: Answer ``session.finish`` with
            ``session.finished``; if False it is rejected as an invalid event
            type, like qwen3.5-omni does.
        max_size: Largest accepted client message in bytes (None: no limit);
            bigger ones close the connection with 1009.
        ping_interval: Seconds between server pings (None: no server pings,
            like DashScope, which is not known to ping).
        ping_timeout: Seconds to wait for a pong before closing with 1011
            (None: never).
        max_session_seconds: Close sessions this old (None: never). The real
            cap is 120 minutes with an undocumented close code.
        expire_close_code: Close code used when a session expires.
        expire_close_reason: Close reason used when a session expires.
        close_timeout: Seconds to wait for the client's side of a close
            handshake before dropping the TCP connection.
        server_vad: Simulate server VAD (see above) for sessions whose
            ``turn_detection`` is not null (default True); False never
            sends VAD events.
        leading_silence_ms: Silence at the start of every reply's audio, in
            milliseconds, as a real model may send before its voice (its
            first deltas are zeros): what tells ``first_audible_delay`` from
            ``first_audio_delay``. 0 (the default): the voice starts at once.
        reply_audio: ``"speech"`` (a synthetic voice) or ``"echo"`` (the
            user's audio, resampled to 24 kHz) as the reply audio.
        clock: Returns the time in epoch seconds, for temporary-key expiry;
            tests pass a fake clock to expire keys without sleeping.
        strict_names: Refuse, as the service does, a model name, voice or
            language the references do not give: an unknown ``model`` gets
            an ``error`` event (code ``Model.NotExist``, param ``model``) and
            no ``session.created``, then a close with 1008; an unknown voice
            (where the model's voices are documented) or transcription
            language, or a translation language that is not a language code,
            gets an ``invalid_value`` error naming the field. False accepts
            any name, for tests that need a made-up one.
        log_connections: Called on a server thread with one line per
            WebSocket connection attempt (who, which model, accepted with its
            session id or refused and why), e.g. to print them as
            ``dashscope-sync serve`` does. It must not block; what it raises
            is logged and ignored.
        tts_close_after_finish: Qwen-TTS-Realtime: close the connection
            (1000) after ``session.finished``, as the client-events page and
            the SDK say; False leaves closing to the client, as the
            interaction page says (SPEECH_FAMILIES.md §E, row 1).

    Examples:
        >>> import json, websocket
        >>> with LocalRealtimeServer() as server:
        ...     ws = websocket.create_connection(
        ...         server.model_url(), header=[f"Authorization: Bearer {server.api_key}"]
        ...     )
        ...     created = json.loads(ws.recv())
        ...     request = {"type": "response.create", "response": {"modalities": ["text"]}}
        ...     _ = ws.send(json.dumps(request))
        ...     frames = [json.loads(ws.recv())]
        ...     while frames[-1]["type"] != "response.done":
        ...         frames.append(json.loads(ws.recv()))
        ...     ws.close()
        >>> created["type"]
        'session.created'
        >>> print(frames[-1]["response"]["output"][0]["content"][0]["text"])
        This is a simulated reply from the local DashScope server. I did not receive any new input.
    """

    def __init__(
        self,
        *,
        api_key: str | None = _DEFAULT_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        model_default: str = "qwen3-omni-flash-realtime",
        chunk_ms: int = 100,
        delta_delay: float = 0.0,
        send_session_created: bool = True,
        support_session_finish: bool = True,
        max_size: int | None = 2**24,
        ping_interval: float | None = None,
        ping_timeout: float | None = 20.0,
        max_session_seconds: float | None = None,
        expire_close_code: int = 1000,
        expire_close_reason: str = "session expired",
        close_timeout: float = 5.0,
        server_vad: bool = True,
        reply_audio: Literal["speech", "echo"] = "speech",
        clock: Callable[[], float] = time.time,
        strict_names: bool = True,
        log_connections: Callable[[str], None] | None = None,
        tts_close_after_finish: bool = True,
        leading_silence_ms: int = 0,
    ) -> None:
        if reply_audio not in ("speech", "echo"):
            raise ValueError(f"reply_audio must be 'speech' or 'echo', got {reply_audio!r}")
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {chunk_ms!r}")
        if delta_delay < 0:
            raise ValueError(f"delta_delay must be >= 0, got {delta_delay!r}")
        if leading_silence_ms < 0:
            raise ValueError(f"leading_silence_ms must be >= 0, got {leading_silence_ms!r}")
        self.api_key = api_key
        self.host = host
        self.model_default = model_default
        self._requested_port = port
        self._send_session_created = send_session_created
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._settings = ConnectionSettings(
            chunk_ms=chunk_ms,
            delta_delay=delta_delay,
            support_session_finish=support_session_finish,
            max_session_seconds=max_session_seconds,
            expire_close_code=expire_close_code,
            expire_close_reason=expire_close_reason,
            server_vad=server_vad,
            reply_audio=reply_audio,
            strict_names=strict_names,
            tts_close_after_finish=tts_close_after_finish,
            leading_silence_ms=leading_silence_ms,
        )
        self._log_connections = log_connections
        self._tokens = TokenStore(clock)
        self._registry = ConnectionRegistry(self._front_door)

        # Guards every mutable attribute below (knob settings, records, the
        # websockets server handle and the lifecycle flags).
        self._lock = threading.Lock()
        # Signalled (with _lock) when a connection is accepted or a client
        # frame is recorded; wait_for_connection/wait_for_received wait on it.
        self._cond = threading.Condition(self._lock)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._closed = False
        self._connections: list[LocalConnection] = []
        self._handed_out = 0
        self._handshakes: list[HandshakeRecord] = []
        self._http_requests: list[HandshakeRecord] = []
        self._received: list[JSONDict] = []
        self._received_by_type: dict[str, list[JSONDict]] = collections.defaultdict(list)
        # FIFO of responses for the next upgrades (reject_next_handshakes).
        self._forced_rejections: collections.deque[Response] = collections.deque()
        # FIFO of responses for the next plain HTTP requests (reject_next_http).
        self._http_rejections: collections.deque[Response] = collections.deque()
        # FIFO of plans for the next responses, on any connection (script_response,
        # fail_next_response, finish_next_response).
        self._response_plans: collections.deque[ResponsePlan] = collections.deque()
        # Per client event type: FIFO of (error override, once) from inject_error.
        self._error_rules: dict[str, collections.deque[tuple[Override, bool]]] = {}
        # Per client event type: (reply override, once) from on_client_event.
        self._reply_rules: dict[str, tuple[Override, bool]] = {}
        self._reply_delay = 0.0
        self._hold_session_created = False
        # The recording new connections are answered from (replay()), or None.
        self._replay: Replay | None = None
        # The connections a replay answers (guarded by _lock): close() closes
        # them itself where websockets' shutdown() leaves open connections be.
        self._replaying: set[ServerConnection] = set()
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout

    # ------------------------------------------------------------------
    # Lifecycle

    def start(self) -> LocalRealtimeServer:
        """Bind the socket and start serving on a background thread.

        Returns:
            The server itself, for chaining.

        Raises:
            RuntimeError: If the server was already started or closed.
            OSError: If the address cannot be bound.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("LocalRealtimeServer is closed and cannot be restarted")
            if self._server is not None:
                raise RuntimeError("LocalRealtimeServer is already started")
            server = serve(
                self._handle_connection,
                self.host,
                self._requested_port,
                process_request=self._process_request,
                # No permessage-deflate: DashScope is not known to offer it, and
                # compressing base64 audio would only cost CPU in benchmarks.
                compression=None,
                # Keepalive is implemented per connection (see LocalConnection),
                # so that it can be changed at runtime and paused by stall().
                ping_interval=None,
                ping_timeout=None,
                close_timeout=self._close_timeout,
                max_size=self._max_size,
                # The socket wrapper that can stall also answers plain HTTP
                # (the tokens endpoint) before websockets sees the request.
                create_connection=cast(type[StallableServerConnection], self._registry.create),
                logger=WEBSOCKETS_LOGGER,
            )
            self._server = server
            self._port = int(server.socket.getsockname()[1])
            # Daemon, so a server that is never closed cannot hang interpreter
            # exit; websockets' handler threads inherit the flag from it.
            self._thread = threading.Thread(
                target=server.serve_forever, name="dashscope-local-server", daemon=True
            )
            self._thread.start()
        logger.debug("local realtime server listening on %s", self.url)
        return self

    def close(self) -> None:
        """Close every connection (1001 "server shutting down"), stop, join all threads.

        Idempotent; a server that was never started is just marked closed.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, thread = self._server, self._thread
            connections = list(self._connections)
        if server is None or thread is None:
            return
        for connection in connections:
            connection.cancel_for_shutdown()
        for connection in connections:
            # A response thread stuck writing to a client that stopped reading
            # would hold websockets' connection lock forever: cut that client off.
            if not connection.wait_streams(self._close_timeout):
                connection.drop()
        if _SHUTDOWN_TAKES_CODE:
            # Typed as Any: websockets < 17's stubs lack these arguments, and
            # the same source must type-check against both.
            shutdown: Any = server.shutdown
            shutdown(code=_SHUTDOWN_CODE, reason=_SHUTDOWN_REASON)
        else:
            # websockets < 17 closes with 1001 and no reason: give the reason
            # first; shutdown() then closes what opened in the meantime.
            for connection in connections:
                connection.close(_SHUTDOWN_CODE, _SHUTDOWN_REASON)
            with self._lock:
                replaying = list(self._replaying)
            for ws in replaying:  # a replay's handler ends when its connection closes
                ws.close(_SHUTDOWN_CODE, _SHUTDOWN_REASON)
            for connection in connections:
                connection.join(self._close_timeout + 1.0)
            server.shutdown()
        thread.join()
        if not _SHUTDOWN_TAKES_CODE:
            _close_shutdown_pipe(server)
        self._registry.join(self._close_timeout + 1.0)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.join()
        logger.debug("local realtime server closed")

    def __enter__(self) -> LocalRealtimeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._port is None:
            state = "not started"
        elif self._closed:
            state = "closed"
        else:
            state = self.url
        return f"<LocalRealtimeServer {state}>"

    # ------------------------------------------------------------------
    # Addresses

    @property
    def port(self) -> int:
        """The bound TCP port.

        Raises:
            RuntimeError: If the server was not started.
        """
        if self._port is None:
            raise RuntimeError("LocalRealtimeServer is not started; call start() first")
        return self._port

    @property
    def http_base_url(self) -> str:
        """``http://HOST:PORT/api/v1``, the HTTP API base (IPv6 hosts in brackets)."""
        return f"http://{self._netloc()}{API_PATH}"

    @property
    def url(self) -> str:
        """``ws://HOST:PORT/api-ws/v1/realtime``, without the ``model`` query."""
        return f"ws://{self._netloc()}{REALTIME_PATH}"

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def model_url(self, model: str | None = None) -> str:
        """Return :attr:`url` with ``?model=`` (``model_default`` when None)."""
        return f"{self.url}?model={model or self.model_default}"

    # ------------------------------------------------------------------
    # Records

    @property
    def connections(self) -> list[LocalConnection]:
        """Every connection accepted so far, open or closed, in order (a copy)."""
        with self._lock:
            return list(self._connections)

    @property
    def handshakes(self) -> list[HandshakeRecord]:
        """Every HTTP request seen on the socket, accepted or rejected (a copy).

        WebSocket upgrades and plain HTTP requests (:attr:`http_requests`) alike.
        """
        with self._lock:
            return list(self._handshakes)

    @property
    def http_requests(self) -> list[HandshakeRecord]:
        """The plain HTTP requests (not ``GET``), e.g. to the tokens endpoint (a copy).

        Each record has the ``method``, ``body``, reply ``status`` and
        ``response_body``.
        """
        with self._lock:
            return list(self._http_requests)

    @property
    def issued_tokens(self) -> list[TemporaryToken]:
        """Every temporary API key minted by ``POST /api/v1/tokens``, in order (a copy)."""
        return self._tokens.issued

    @property
    def received(self) -> list[JSONDict]:
        """Decoded client frames from all connections, in arrival order (a copy)."""
        with self._lock:
            return list(self._received)

    def wait_for_connection(self, timeout: float = 5.0) -> LocalConnection:
        """Wait for the next accepted connection not yet returned by this method.

        Successive calls return the 1st, 2nd, ... connection, so a test can
        follow a client through reconnects.

        Raises:
            TimeoutError: If no such connection arrives within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._connections) > self._handed_out, timeout):
                raise TimeoutError(
                    f"no new connection to the local server within {seconds(timeout)} "
                    f"({len(self._connections)} accepted, {self._handed_out} already returned)"
                )
            connection = self._connections[self._handed_out]
            self._handed_out += 1
            return connection

    def wait_for_received(self, type: str, *, count: int = 1, timeout: float = 5.0) -> JSONDict:
        """Wait until ``count`` client frames of ``type`` have arrived (all connections).

        Args:
            type: The client event type, e.g. ``"session.update"``.
            count: How many frames of that type to wait for.
            timeout: Seconds to wait.

        Returns:
            The ``count``-th frame of that type (the first one for ``count=1``).

        Raises:
            TimeoutError: If fewer arrived within ``timeout``; the message
                lists what did arrive.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        with self._cond:
            frames = self._received_by_type[type]
            if not self._cond.wait_for(lambda: len(frames) >= count, timeout):
                seen = collections.Counter(str(frame.get("type")) for frame in self._received)
                raise TimeoutError(
                    f"timed out after {seconds(timeout)} waiting for {count} {type!r} client "
                    f"frame(s); got {len(frames)}. Frames received so far: {dict(seen)}"
                )
            return frames[count - 1]

    # ------------------------------------------------------------------
    # Knobs: handshake

    def hold_session_created(self, hold: bool = True) -> None:
        """Hold back ``session.created`` of new connections (or release it).

        Releasing sends the held ``session.created`` to every open connection
        that has not had one yet.
        """
        with self._lock:
            self._hold_session_created = hold
            connections = list(self._connections)
        if not hold and self._send_session_created:
            for connection in connections:
                if connection.is_open:
                    connection.send_session_created()

    # ------------------------------------------------------------------
    # Knobs: client events

    def on_client_event(self, type: str, reply: ReplySpec, *, once: bool = False) -> None:
        """Replace the built-in answer to client events of ``type``.

        Args:
            type: The client event type, e.g. ``"response.create"``.
            reply: Frames to send instead (``event_id`` added when missing);
                a function of the client frame returning them; or None to
                swallow the event (no answer at all). The built-in handling
                (state changes included) is skipped.
            once: Apply to the next such event only; else until
                :meth:`clear_overrides`. A later call for the same type
                replaces this one.
        """
        with self._lock:
            self._reply_rules[type] = (Override(reply=reply), once)

    def inject_error(
        self,
        for_type: str,
        error: Mapping[str, Any],
        *,
        echo_event_id: bool = True,
        once: bool = True,
    ) -> None:
        """Answer the next client event of ``for_type`` with an ``error`` event instead.

        Takes precedence over :meth:`on_client_event`; the event is not
        processed otherwise. Several injections for one type queue up.

        Args:
            for_type: The client event type.
            error: The ``error`` object, e.g. ``{"type": "server_error",
                "code": "COMMON_ERROR", "message": "..."}``.
            echo_event_id: Copy the client's ``event_id`` into
                ``error.event_id``, as the real server does.
            once: Apply once; else to every such event until
                :meth:`clear_overrides`.
        """
        rule = Override(error=dict(error), echo_event_id=echo_event_id)
        with self._lock:
            self._error_rules.setdefault(for_type, collections.deque()).append((rule, once))

    def clear_overrides(self) -> None:
        """Remove every :meth:`on_client_event` and :meth:`inject_error` rule.

        Plans queued by :meth:`script_response`, :meth:`fail_next_response` and
        :meth:`finish_next_response` that no response has taken yet go too.
        """
        with self._lock:
            self._error_rules.clear()
            self._reply_rules.clear()
            self._response_plans.clear()

    def set_reply_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before handling each client event (0 to stop)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._reply_delay = seconds

    @property
    def reply_delay(self) -> float:
        """The delay set by :meth:`set_reply_delay`."""
        with self._lock:
            return self._reply_delay

    # ------------------------------------------------------------------
    # Knobs: replay

    def replay(self, recording: object, *, speed: float | None = 1.0) -> Replay:
        """Answer new connections with a recorded session instead of the simulator.

        Each connection accepted from now on (until :meth:`stop_replay` or
        another ``replay()``; those already open keep their answers) gets the
        whole recording from its start. Its model (the URL's ``model``) must
        be the recorded one, else it diverges at once. The recorded server
        frames (``session.created`` first; a minimal one with the recorded
        session id and model if the recording has none) are sent in order, each once the
        client frames recorded before it have come and its recorded gap has
        passed, divided by ``speed``; the client's frames are matched to the
        recorded ones by type and order, never by event id. Audio left out of
        the recording is sent as silence of the recorded length (zero bytes).
        Server frames keep their recorded ids, except that a recorded client
        id (an ``event_id``, a created item's ``id``) in them becomes the id
        this client used in the matching frame.

        A client that diverges (another type, a frame where the recording has
        none, closing before it ends) gets an ``error`` event with code
        ``replay_diverged`` naming the first frame that differs (its index
        and line, what was expected and what came), then a close with 1008;
        the returned handle records it. The other knobs and records of the
        server (``connections``, ``stall``, ``inject_error``...) do not apply
        to a replayed connection, except :attr:`received`.

        Args:
            recording: A recording directory, its ``frames.jsonl`` path, a
                loaded `Recording`, or the file's lines (JSON strings or
                objects, the header first).
            speed: How much faster than recorded to go (2.0: twice as fast);
                None or ``float("inf")``: as fast as possible.

        Returns:
            The `Replay`: ``wait(timeout)``, ``error``, ``done``, ``completed``.

        Raises:
            ConfigError: The recording cannot be read or is not in the
                format (the message names the line), or ``speed`` is not > 0.
            ConfigTypeError: ``recording`` or ``speed`` has the wrong type.
        """
        checked = check_speed(speed)
        replay = Replay(Recording.load(recording), checked)
        with self._lock:
            self._replay = replay
        return replay

    def stop_replay(self) -> None:
        """Answer new connections with the simulator again (replays under way go on)."""
        with self._lock:
            self._replay = None

    # ------------------------------------------------------------------
    # websockets hooks (server threads)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path, query = parse_target(request.path)
        response: Response | None = None
        with self._lock:
            if path == REALTIME_PATH and self._forced_rejections:
                response = self._forced_rejections.popleft()
        if response is None:
            response = check_request(request, self.api_key, self._tokens.status)
        status = 101 if response is None else response.status_code
        record = HandshakeRecord(
            path,
            query,
            RequestHeaders(request.headers.raw_items()),
            status,
            # websockets < 17 only hands GET requests over, and has no Request.method.
            method=getattr(request, "method", "GET"),
            response_body=b"" if response is None else bytes(response.body),
        )
        with self._lock:
            self._handshakes.append(record)
        logger.debug("handshake %s model=%r -> %d", path, query.get("model"), status)
        if response is not None:
            peer = peer_text(ws.remote_address)
            self._log_connection(
                f"{peer}: refused, HTTP {status}{_error_code(record.response_body)} "
                f"(model {query.get('model', '')!r})"
            )
        return response

    def _log_connection(self, line: str) -> None:
        if self._log_connections is None:
            return
        try:
            self._log_connections(line)
        except Exception:  # a broken log must not break the server
            logger.exception("log_connections raised")

    def _front_door(self, sock: Any, first: bytes) -> None:
        serve_http(sock, first, self._handle_http)

    def _handle_http(self, request: HttpRequest) -> Response:
        path, query = parse_target(request.target)
        with self._lock:
            response = self._http_rejections.popleft() if self._http_rejections else None
        if response is None:
            response = route_http(request, path, query, api_key=self.api_key, tokens=self._tokens)
        record = HandshakeRecord(
            path,
            query,
            request.headers,
            response.status_code,
            method=request.method,
            body=request.body,
            response_body=bytes(response.body),
        )
        with self._lock:
            self._handshakes.append(record)
            self._http_requests.append(record)
        logger.debug("HTTP %s %s -> %d", request.method, path, response.status_code)
        return response

    def _handle_connection(self, ws: ServerConnection) -> None:
        assert isinstance(ws, StallableServerConnection)
        with self._lock:
            ping_interval, ping_timeout = self._ping_interval, self._ping_timeout
            replay = self._replay
        if replay is not None:
            with self._lock:
                self._replaying.add(ws)
            try:
                serve_replay(replay, ws, record=self._record_frame, log=self._log_connection)
            finally:
                with self._lock:
                    self._replaying.discard(ws)
            return
        connection = LocalConnection(
            ws,
            self,
            self._settings,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        connection.serve()

    # ConnectionHost protocol, called by LocalConnection.

    def _connection_opened(self, connection: LocalConnection) -> bool:
        with self._cond:
            self._connections.append(connection)
            self._cond.notify_all()
            send_now = self._send_session_created and not self._hold_session_created
        logger.debug("connection %s opened (model=%r)", connection.session_id, connection.model)
        return send_now

    def _connection_started(self, connection: LocalConnection, refusal: str | None) -> None:
        model = connection.model
        if refusal is None:
            self._log_connection(f"{connection.peer}: {connection.session_id} model {model!r}")
        else:
            self._log_connection(f"{connection.peer}: refused, {refusal}")

    def _connection_closed(self, connection: LocalConnection) -> None:
        logger.debug("connection %s closed", connection.session_id)

    def _record_received(self, connection: LocalConnection, frame: JSONDict) -> None:
        self._record_frame(frame)

    def _record_frame(self, frame: JSONDict) -> None:
        with self._cond:
            self._received.append(frame)
            event_type = frame.get("type")
            if isinstance(event_type, str):
                self._received_by_type[event_type].append(frame)
            self._cond.notify_all()

    def _take_response_plan(self) -> ResponsePlan | None:
        with self._lock:
            return self._response_plans.popleft() if self._response_plans else None

    def _take_override(self, event_type: str) -> Override | None:
        with self._lock:
            queue = self._error_rules.get(event_type)
            if queue:
                rule, once = queue[0]
                if once:
                    queue.popleft()
                return rule
            entry = self._reply_rules.get(event_type)
            if entry is None:
                return None
            rule, once = entry
            if once:
                del self._reply_rules[event_type]
            return rule


def _error_code(body: bytes) -> str:
    """`` CODE`` of a DashScope JSON error body, or nothing."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return ""
    return f" {code}" if isinstance(code, str) and code else ""
