"""``dashscope-sync translate``: a LiveTranslate session from a WAV file.

Streams the file at the pace of speech (or faster with ``--fast``), then
finishes the session (``session.finish`` flushes the translation), and writes
the translated audio. On a terminal, standard error shows one status line:
the upload's progress and the live caption (the confirmed text, then the
provisional tail, faint); the confirmed text goes to standard output, as it
firms up or, when both streams are the terminal, whole at the end, so the
two never share a line.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import TextIO

from .._client.client import Client
from .._constants import INPUT_SAMPLE_RATE
from .._conversation.transcript import Transcript
from .._core.response import ResponseResult
from .._errors import ConfigError
from .._fmt import seconds
from .._wire.config import NOT_GIVEN, SessionUpdate, Translation
from .._wire.events import ResponseAudioTranscriptText, ResponseTextText
from .._wire.families import (
    ModelFamily,
)
from .term import Budget, Finisher, Screen, screen_of
from .transcript import save_transcript

__all__ = ["translate_file"]

#: 100 ms of 16 kHz PCM16, the pace the service wants.
_CHUNK = INPUT_SAMPLE_RATE * 2 // 10


def translate_file(
    client: Client,
    args: argparse.Namespace,
    pcm: bytes,
    output: Path,
    budget: Budget,
    out: TextIO,
    err: TextIO,
) -> int:
    """Translate ``pcm``; print the translation as it firms up; write the audio. Returns 0."""
    with budget.bound():
        result, transcript = _translate(client, args, pcm, budget, out, err)
    if result.audio:
        try:
            output.write_bytes(result.to_wav_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
        print(f"audio: {seconds(result.audio_seconds)} -> {output}", file=out)
    if args.transcript is not None:
        save_transcript(Path(args.transcript), transcript, out)
    return 0


def _translate(
    client: Client, args: argparse.Namespace, pcm: bytes, budget: Budget, out: TextIO, err: TextIO
) -> tuple[ResponseResult, Transcript]:
    screen = screen_of(err)
    caption = _Caption(screen)
    started = time.monotonic()
    budget.stage = "connecting"
    with client.realtime.connect(model=args.model, timeout=budget.left()) as session:
        budget.watch(session)
        print(f"connected: session {session.id} ({seconds(time.monotonic() - started)})", file=err)
        if session.family not in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
            raise ConfigError(
                f"translate needs a LiveTranslate model; "
                f"{args.model} is a {session.family.title} model"
            )
        update = SessionUpdate(
            modalities=["text"] if args.text_only else ["text", "audio"],
            translation=Translation(language=args.to),
            turn_detection=None,
            voice=args.voice or NOT_GIVEN,
        )
        budget.stage = "configuring the session"
        session.update_session(update, timeout=budget.left())
        if caption.live:
            session.on(ResponseTextText, caption.show)
            session.on(ResponseAudioTranscriptText, caption.show)
        # Registered before the audio: the server starts the translation itself.
        response = session.next_response()
        budget.stage = "sending the audio"
        total = len(pcm) / 2 / INPUT_SAMPLE_RATE
        upload_started = time.monotonic()
        for start in range(0, len(pcm), _CHUNK):
            if not args.fast:
                due = upload_started + start / 2 / INPUT_SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            session.append_audio(pcm[start : start + _CHUNK])
            sent = min(len(pcm), start + _CHUNK) / 2 / INPUT_SAMPLE_RATE
            caption.progress(f"uploading {sent:5.1f} / {total:.1f} s")
        caption.progress("translating")
        budget.stage = "waiting for the translation"
        # session.finish flushes: the server translates what it holds, then
        # says session.finished. The translation streams in meanwhile, so the
        # finish waits on a thread of its own (the budget's timer ends it).
        finisher = Finisher(session)
        finisher.start()
        # On a terminal shared with the caption, the confirmed text is shown
        # by the caption and printed whole at the end: streamed, it would
        # share the caption's line.
        stream = screen is None or not (caption.live and screen.shared)
        prefix = f"translation ({args.to}): "
        if stream:
            print(prefix, end="", file=out, flush=True)
        pieces = []
        for piece in response.iter_text(timeout=None):
            pieces.append(piece)
            if stream:
                print(piece, end="", file=out, flush=True)
        result = response.wait(None)
        caption.close()
        if stream:
            print(file=out)
        else:
            print(prefix + "".join(pieces), file=out)
        budget.stage = "finishing the session"
        finisher.result()
        return result, session.transcript


class _Caption:
    """The status line of a translation: the upload's progress, then the live caption.

    Thread safety: `show` runs on the handler thread, `progress` on the main thread.
    """

    def __init__(self, screen: Screen | None) -> None:
        self._screen = screen
        self.live = screen is not None and screen.live
        # Guards the fields below and keeps each redraw consistent with them.
        self._lock = threading.Lock()
        self._progress = ""
        self._text = ""
        self._stash = ""
        self._closed = False

    def progress(self, text: str) -> None:
        with self._lock:
            self._progress = text
            self._draw()

    def show(self, event: ResponseTextText | ResponseAudioTranscriptText) -> None:
        with self._lock:
            self._text, self._stash = event.text, event.stash
            self._draw()

    def close(self) -> None:
        """Stop drawing and clear the line (late events draw nothing)."""
        with self._lock:
            self._closed = True
            if self._screen is not None:
                self._screen.finish()

    def _draw(self) -> None:
        if self._screen is None or not self.live or self._closed:
            return
        text = self._text + self._stash
        prefix = f"{self._progress}: " if self._progress and text else self._progress
        self._screen.status(self._text, self._stash, prefix=prefix)
