"""A recording relay for the replay tests: client <-> relay <-> local server, on loopback.

It writes what passed through in the recording format the library's
recorder writes (``frames.jsonl``: a header, then one line per frame with
its time, direction and the frame), so the replay tests do not depend on the
recorder. Real sockets throughout: the client under test connects to the
relay's websockets server, the relay to the upstream server with websockets'
client.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import Server, ServerConnection, serve

from dashscope_sync._wire.families import family_of
from dashscope_sync.testing import LocalRealtimeServer

#: The payload field of each frame type that carries audio or an image (base64).
PAYLOADS = {
    "input_audio_buffer.append": "audio",
    "input_image_buffer.append": "image",
    "response.audio.delta": "delta",
}


class CaptureRelay:
    """Relays one connection to ``upstream`` and writes it to ``directory/frames.jsonl``.

    Thread safety: start and stop it from one thread; ``wait_written`` from any.
    """

    def __init__(self, upstream: LocalRealtimeServer, directory: Path, *, audio: bool = True):
        self._upstream = upstream
        self.directory = directory
        self._audio = audio
        # Set once the connection ended and frames.jsonl was written.
        self._written = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The relay's realtime URL, without the model."""
        assert self._server is not None
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/api-ws/v1/realtime"

    def __enter__(self) -> CaptureRelay:
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="capture-relay", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join()

    def wait_written(self, timeout: float = 10.0) -> Path:
        """Wait until the relayed connection ended and its recording is on disk."""
        assert self._written.wait(timeout), "the relayed connection did not end"
        return self.directory / "frames.jsonl"

    def _handle(self, client: ServerConnection) -> None:
        assert client.request is not None
        path = client.request.path
        model = parse_qs(urlsplit(path).query)["model"][0]
        start = time.monotonic()
        started = datetime.datetime.now(datetime.timezone.utc).isoformat()
        # Guards lines: both relay threads append to it.
        lock = threading.Lock()
        lines: list[dict[str, Any]] = []

        def note(direction: str, message: str | bytes) -> None:
            line: dict[str, Any] = {"t": time.monotonic() - start, "dir": direction}
            frame = json.loads(message)
            field = PAYLOADS.get(frame.get("type"))
            if not self._audio and field is not None and field in frame:
                line["omitted"] = {field: len(base64.b64decode(frame[field]))}
                frame[field] = ""
            line["frame"] = frame
            with lock:
                lines.append(line)

        upstream_url = self._upstream.url.rsplit("/api-ws", 1)[0] + path
        headers = {"Authorization": client.request.headers["Authorization"]}
        with connect(
            upstream_url, additional_headers=headers, compression=None, max_size=None
        ) as upstream:

            def client_to_upstream() -> None:
                with contextlib.suppress(ConnectionClosed):
                    for message in client:
                        note("out", message)
                        upstream.send(message)
                upstream.close()

            pump = threading.Thread(target=client_to_upstream, name="capture-relay-out")
            pump.start()
            with contextlib.suppress(ConnectionClosed):
                for message in upstream:
                    note("in", message)
                    client.send(message)
            client.close()
            pump.join()
        created = next(
            line["frame"] for line in lines if line["frame"]["type"] == "session.created"
        )
        header = {
            "recording": 1,
            "model": model,
            "family": family_of(model).value,
            "session_id": created["session"]["id"],
            "started": started,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "frames.jsonl").open("w", encoding="utf-8") as file:
            for line in [header, *lines]:
                file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._written.set()
