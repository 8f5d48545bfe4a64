"""A scripted Qwen-ASR-Realtime server on a raw socket, for the transcription wire tests.

It answers as SPEECH_FAMILIES.md B3/B4 write the service: ``session.updated``
(or an ``error``) for the update, the scripted transcription events after
each commit or at ``session.finish``, then ``session.finished``; after it
either the client closes (the docs) or, with ``server_closes``, the server
does. Every frame the client sends is kept, parsed, for the assertions.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dashscope_sync as ds

from ._net import OP_TEXT, RawPeer, close_frame, parse_client_frames, text

Frame = dict[str, Any]


class AsrPeer:
    """A scripted ASR server: one client, answers decided by the test's script.

    Thread safety: the script runs on the peer's responder thread; the test
    reads ``sent`` under ``lock``.
    """

    def __init__(
        self,
        *,
        echo: dict[str, Any] | None = None,
        refuse_update: bool = False,
        on_commit: Callable[[Frame], list[Frame]] | None = None,
        on_finish: list[Frame] | None = None,
        on_append: Callable[[int], list[Frame]] | None = None,
        server_closes: bool = False,
        answer_finish: bool = True,
    ) -> None:
        self.peer = RawPeer(created=False)
        self.url = self.peer.url
        self.echo = echo
        self.refuse_update = refuse_update
        self.on_commit = on_commit
        self.on_finish = on_finish or []
        self.on_append = on_append
        self.server_closes = server_closes
        self.answer_finish = answer_finish
        # Guards `sent`: the client's frames, parsed, in the order they came.
        self.lock = threading.Lock()
        self.sent: list[Frame] = []
        self._appends = 0
        self._thread = threading.Thread(target=self._run, name="test-asr-peer", daemon=True)
        self._thread.start()

    def frames(self, wire_type: str | None = None) -> list[Frame]:
        with self.lock:
            return [f for f in self.sent if wire_type is None or f.get("type") == wire_type]

    def send(self, event: Frame) -> None:
        # The client may have closed already (a test that ends early): a real
        # server's write then fails too, and nothing the test checks depends on it.
        with contextlib.suppress(OSError):
            self.peer.send(text(event))

    def _run(self) -> None:
        if not self.peer.upgraded.wait(10):
            return
        self.send(
            {
                "event_id": "event_1",
                "type": "session.created",
                "session": {
                    "id": "sess_asr",
                    "object": "realtime.session",
                    "model": ds.MODEL_QWEN3_ASR_FLASH_REALTIME,
                    "modalities": ["text"],
                    "input_audio_format": "pcm16",
                    "input_audio_transcription": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "silence_duration_ms": 200,
                    },
                },
            }
        )
        seen = 0
        while True:
            with self.peer.arrived:
                self.peer.arrived.wait_for(
                    lambda seen=seen: (
                        len(parse_client_frames(bytes(self.peer.received))) > seen
                        or self.peer.client_closed.is_set()
                    ),
                    timeout=0.5,
                )
                frames = parse_client_frames(bytes(self.peer.received))
            for opcode, payload in frames[seen:]:
                if opcode == OP_TEXT:
                    self._answer(json.loads(payload))
            seen = len(frames)
            if self.peer.client_closed.is_set() or self.peer.conn is None:
                return

    def _answer(self, event: Frame) -> None:
        with self.lock:
            self.sent.append(event)
        kind = event.get("type")
        if kind == "session.update":
            if self.refuse_update:
                self.send(
                    {
                        "event_id": "event_e",
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "code": "invalid_value",
                            "message": "Invalid value: 'xx'.",
                            "param": "session.input_audio_transcription.language",
                            "event_id": event["event_id"],
                        },
                    }
                )
                return
            session = dict(event["session"])
            if session.get("input_audio_format") == "pcm":
                session["input_audio_format"] = "pcm16"  # as the server echoes it (E11)
            if self.echo is not None:
                session.update(self.echo)
            self.send({"event_id": "event_2", "type": "session.updated", "session": session})
        elif kind == "input_audio_buffer.append":
            self._appends += 1
            if self.on_append is not None:
                for reply in self.on_append(self._appends):
                    self.send(reply)
        elif kind == "input_audio_buffer.commit" and self.on_commit is not None:
            for reply in self.on_commit(event):
                self.send(reply)
        elif kind == "session.finish":
            for reply in self.on_finish:
                self.send(reply)
            if self.answer_finish:
                self.send({"event_id": "event_f", "type": "session.finished"})
            if self.server_closes:
                with contextlib.suppress(OSError):
                    self.peer.send(close_frame(1000))

    def close(self) -> None:
        self.peer.close()
        self._thread.join(10)


@contextmanager
def asr_peer(**script: Any) -> Iterator[tuple[AsrPeer, ds.Client]]:
    """An `AsrPeer` and a client pointed at it; closed afterwards."""
    peer = AsrPeer(**script)
    try:
        yield peer, ds.Client("k", base_url=peer.url)
    finally:
        peer.close()


def text_event(item: str, confirmed: str, stash: str, **more: Any) -> Frame:
    """A ``conversation.item.input_audio_transcription.text`` frame as the docs write it."""
    return {
        "event_id": f"event_t_{item}_{len(confirmed)}",
        "type": "conversation.item.input_audio_transcription.text",
        "item_id": item,
        "content_index": 0,
        "language": "zh",
        "emotion": "neutral",
        "text": confirmed,
        "stash": stash,
        **more,
    }


def completed_event(item: str, transcript: str, language: str = "zh") -> Frame:
    """A ``...transcription.completed`` frame as the docs write it."""
    return {
        "event_id": f"event_c_{item}",
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": item,
        "content_index": 0,
        "language": language,
        "emotion": "neutral",
        "transcript": transcript,
    }
