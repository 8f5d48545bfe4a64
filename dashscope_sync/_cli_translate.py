"""``dashscope-sync translate``: a LiveTranslate session from a WAV file.

Streams the file at the pace of speech (or faster with ``--fast``), prints
the translation as it firms up (the confirmed text; on a terminal the
provisional tail is shown on standard error as it changes), and writes the
translated audio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

from ._cli_term import Budget
from ._client import Client
from ._config import NOT_GIVEN, SessionUpdate, Translation
from ._constants import INPUT_SAMPLE_RATE
from ._errors import ConfigError
from ._events import ResponseAudioTranscriptText, ResponseTextText
from ._families import (
    ModelFamily,
)
from ._response import ResponseResult

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
        result = _translate(client, args, pcm, budget, out, err)
    if result.audio:
        try:
            output.write_bytes(result.to_wav_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
        print(f"audio: {result.audio_seconds:.2f} s -> {output}", file=out)
    return 0


def _translate(
    client: Client, args: argparse.Namespace, pcm: bytes, budget: Budget, out: TextIO, err: TextIO
) -> ResponseResult:
    budget.stage = "connecting"
    with client.realtime.connect(model=args.model, timeout=budget.left()) as session:
        budget.watch(session)
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
        if err.isatty():

            def show(event: ResponseTextText | ResponseAudioTranscriptText) -> None:
                err.write(f"\r\x1b[K{event.text}\x1b[2m{event.stash}\x1b[0m")
                err.flush()

            session.on(ResponseTextText, show)
            session.on(ResponseAudioTranscriptText, show)
        # Registered before the audio: the server starts the translation itself.
        response = session.next_response()
        budget.stage = "sending the audio"
        started = time.monotonic()
        for start in range(0, len(pcm), _CHUNK):
            if not args.fast:
                due = started + start / 2 / INPUT_SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            session.append_audio(pcm[start : start + _CHUNK])
        session.commit_audio()
        budget.stage = "waiting for the translation"
        print(f"translation ({args.to}): ", end="", file=out, flush=True)
        # No timeouts of their own: the budget's timer closes the session.
        for piece in response.iter_text(timeout=None):
            print(piece, end="", file=out, flush=True)
        print(file=out)
        result = response.wait(None)
        budget.stage = "finishing the session"
        session.finish_session(timeout=budget.left())
    return result
