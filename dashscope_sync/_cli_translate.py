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
from typing import Any, TextIO

from ._audio import load_wav
from ._client import API_KEY_ENV, Client
from ._config import NOT_GIVEN, SessionUpdate, Translation
from ._constants import INPUT_SAMPLE_RATE
from ._errors import ConfigError
from ._events import ResponseAudioTranscriptText, ResponseTextText
from ._families import (
    MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
    ModelFamily,
)

__all__ = ["add_translate_parser"]

#: 100 ms of 16 kHz PCM16, the pace the service wants.
_CHUNK = INPUT_SAMPLE_RATE * 2 // 10


def add_translate_parser(commands: Any, run_key: Any) -> None:
    """Add the ``translate`` command; ``run_key`` returns the API key (or raises)."""
    translate = commands.add_parser(
        "translate",
        help=f"translate a WAV file with a LiveTranslate model ({API_KEY_ENV})",
    )
    translate.add_argument("input", help="16 kHz mono PCM16 WAV file to translate")
    translate.add_argument("--to", required=True, help="target language code (en, zh, ja...)")
    translate.add_argument(
        "--model",
        default=MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
        help="a LiveTranslate model",
    )
    translate.add_argument("--output", default="translated.wav", help="the translated audio")
    translate.add_argument("--voice", help="the voice of the translation")
    translate.add_argument("--text-only", action="store_true", help="no translated audio")
    translate.add_argument("--url", default=None, help="realtime WebSocket URL")
    translate.add_argument("--workspace", help="workspace id (default: DASHSCOPE_WORKSPACE)")
    translate.add_argument("--region", help="region id (default: DASHSCOPE_REGION, cn-beijing)")
    translate.add_argument("--fast", action="store_true", help="upload faster than real time")
    translate.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")

    def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        client = Client(run_key(), base_url=args.url, workspace=args.workspace, region=args.region)
        return translate_file(client, args, out, err)

    translate.set_defaults(run=run)


def translate_file(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Translate ``args.input``; print the translation; write the audio. Returns 0."""
    pcm = load_wav(args.input)
    with client.realtime.connect(model=args.model) as session:
        if session.family not in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
            raise ConfigError(
                f"translate needs a LiveTranslate model; {args.model} is {session.family!r}"
            )
        update = SessionUpdate(
            modalities=["text"] if args.text_only else ["text", "audio"],
            translation=Translation(language=args.to),
            turn_detection=None,
            voice=args.voice or NOT_GIVEN,
        )
        session.update_session(update)
        if err.isatty():

            def show(event: ResponseTextText | ResponseAudioTranscriptText) -> None:
                err.write(f"\r\x1b[K{event.text}\x1b[2m{event.stash}\x1b[0m")
                err.flush()

            session.on(ResponseTextText, show)
            session.on(ResponseAudioTranscriptText, show)
        # Registered before the audio: the server starts the translation itself.
        response = session.next_response()
        started = time.monotonic()
        for start in range(0, len(pcm), _CHUNK):
            if not args.fast:
                due = started + start / 2 / INPUT_SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            session.append_audio(pcm[start : start + _CHUNK])
        session.commit_audio()
        print(f"translation ({args.to}): ", end="", file=out, flush=True)
        for piece in response.iter_text(timeout=args.timeout):
            print(piece, end="", file=out, flush=True)
        print(file=out)
        result = response.wait(args.timeout)
        session.finish_session(timeout=args.timeout)
    if result.audio:
        Path(args.output).write_bytes(result.to_wav_bytes())
        print(f"audio: {result.audio_seconds:.2f} s -> {args.output}", file=out)
    return 0
