"""``dashscope-sync transcribe``: a Qwen-ASR-Realtime session from a file or the microphone.

On a terminal the interim transcript is shown in place as it changes (the
provisional tail dimmed) and each utterance's final transcript replaces it
on a line of its own; piped, only the final lines are written, one per
utterance. A line shown in place is always ended before anything else is
written (an error, Ctrl-C), so nothing is printed over it.

The parser is built here (`add_transcribe`); `_cli/main.py` registers it with
the helpers that carry its exit-code conventions (`TranscribeKit`).
"""

from __future__ import annotations

import argparse
import shutil
import threading
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TextIO

import attrs

from .._audio.feed import stream_pcm
from .._client.client import Client
from .._errors import DashScopeError
from .._sessions.transcription import Transcript, TranscriptionSession
from .._wire.families import ASR_LANGUAGES, MODEL_QWEN3_ASR_FLASH_REALTIME
from .._wire.transcription_config import TranscriptionConfig

__all__ = ["TranscribeKit", "add_transcribe"]

#: How long the end of a file may take to come back after the audio was sent.
_FINISH_TIMEOUT = 30.0


@attrs.frozen
class TranscribeKit:
    """What the command needs from ``_cli/main.py``, each keeping its exit-code conventions.

    Attributes:
        subcommand: Makes the sub-parser (examples and exit codes in its epilog).
        usage: The usage error (exit 2) for an option and a message.
        client: The `Client` for the parsed arguments (no key: exit 3).
        read_input: Reads the audio file as 16 kHz PCM16 (unusable: exit 5).
        microphone: Opens the default microphone (no ``[audio]`` extra: exit 8).
        url: The argparse type of a ``ws://``/``wss://`` URL.
        workspace: The argparse type of a workspace id.
        seconds: The argparse type of a positive number of seconds.
    """

    subcommand: Callable[..., argparse.ArgumentParser]
    usage: Callable[[str, str], Exception]
    client: Callable[[argparse.Namespace], Client]
    read_input: Callable[[str], bytes]
    microphone: Callable[[], AbstractContextManager[Any]]
    url: Callable[[str], str]
    workspace: Callable[[str], str]
    seconds: Callable[[str], float]


def add_transcribe(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], kit: TranscribeKit, prog: str
) -> None:
    """Add the ``transcribe`` command to the parser."""
    parser = kit.subcommand(
        commands,
        "transcribe",
        summary="transcribe an audio file or the microphone (Qwen-ASR-Realtime)",
        description=(
            "Stream an audio file (any WAV; FLAC/OGG/MP3 with soundfile) or, with --mic,\n"
            "the microphone into a speech recognition session and print what was said.\n"
            "On a terminal the interim text is shown in place as it changes; piped, only\n"
            "the final line of each utterance is written. With --mic, Ctrl-C ends."
        ),
        examples=(
            f"  DASHSCOPE_API_KEY=sk-... {prog} transcribe speech.wav\n"
            f"  {prog} transcribe speech.wav --language en --fast > transcript.txt\n"
            f"  {prog} transcribe --mic --language zh"
        ),
    )
    parser.add_argument("input", nargs="?", help="audio file to transcribe (or --mic)")
    parser.add_argument("--mic", action="store_true", help="transcribe the microphone")
    parser.add_argument(
        "--language",
        choices=ASR_LANGUAGES,
        metavar="CODE",
        help="the spoken language (zh, en, ja...; default: detected)",
    )
    parser.add_argument(
        "--model", default=MODEL_QWEN3_ASR_FLASH_REALTIME, help="a Qwen-ASR-Realtime model"
    )
    parser.add_argument("--url", type=kit.url, default=None, help="realtime WebSocket URL")
    parser.add_argument(
        "--workspace", type=kit.workspace, help="workspace id (default: DASHSCOPE_WORKSPACE)"
    )
    parser.add_argument("--region", help="region id (default: DASHSCOPE_REGION, cn-beijing)")
    parser.add_argument("--fast", action="store_true", help="upload faster than real time")
    parser.add_argument(
        "--timeout",
        type=kit.seconds,
        default=_FINISH_TIMEOUT,
        help="seconds to wait for each transcript",
    )

    def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        return _run(kit, args, out, err)

    parser.set_defaults(run=run)


def _run(kit: TranscribeKit, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.mic == (args.input is not None):
        raise kit.usage("input", "transcribe needs an audio file, or --mic (not both)")
    # Checked before the key and the file: a model of another family is a usage error.
    try:
        config = TranscriptionConfig(model=args.model, language=args.language)
    except DashScopeError as exc:
        raise kit.usage("--model", str(exc)) from exc
    client = kit.client(args)
    printer = _Printer(out)
    try:
        if args.mic:
            return _from_microphone(kit, client, config, args, printer, err)
        pcm = kit.read_input(args.input)
        return _from_file(client, config, pcm, args, printer)
    finally:
        printer.end()


def _from_file(
    client: Client,
    config: TranscriptionConfig,
    pcm: bytes,
    args: argparse.Namespace,
    printer: _Printer,
) -> int:
    with client.transcription.connect(config) as session:
        # The audio goes out on the feed's thread, then session.finish from a
        # thread of ours, while this one prints the transcripts as they come.
        feed = stream_pcm(session, pcm, realtime=not args.fast)
        failure: list[BaseException] = []

        def finish() -> None:
            try:
                feed.wait()
                session.finish(args.timeout)
            except DashScopeError as exc:
                if not session.closed:
                    failure.append(exc)
                    session.close()  # wakes the reader below

        finisher = threading.Thread(target=finish, name="dashscope-sync-transcribe", daemon=True)
        finisher.start()
        try:
            _print_all(session, printer, args.timeout)
        finally:
            feed.stop()
        finisher.join(args.timeout)
        if failure:
            raise failure[0]
    return 0


def _from_microphone(
    kit: TranscribeKit,
    client: Client,
    config: TranscriptionConfig,
    args: argparse.Namespace,
    printer: _Printer,
    err: TextIO,
) -> int:
    with kit.microphone() as microphone, client.transcription.connect(config) as session:
        session.attach(microphone=microphone)
        print(f"listening: session {session.id}; Ctrl-C to end", file=err, flush=True)
        try:
            _print_all(session, printer, None)
        except KeyboardInterrupt:
            printer.end()
            # The last utterance is transcribed before session.finished.
            session.detach()
            session.finish(args.timeout)
            _print_all(session, printer, args.timeout)
    return 0


def _print_all(session: TranscriptionSession, printer: _Printer, timeout: float | None) -> None:
    for transcript in session.transcripts(timeout=timeout):
        printer.show(transcript)


class _Printer:
    """Writes transcripts: interims in place on a terminal, final lines always.

    Used by one thread (the command's main thread).
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        # An interim is on the current line, not ended by a newline yet.
        self.showing = False

    def show(self, transcript: Transcript) -> None:
        out = self.out
        if transcript.final:
            if self.showing:
                out.write("\r\x1b[K")
                self.showing = False
            if transcript.text:
                out.write(transcript.text + "\n")
        elif self.tty:
            text, stash = _tail(transcript.text, transcript.stash, _columns() - 1)
            out.write(f"\r\x1b[K{text}\x1b[2m{stash}\x1b[0m")
            self.showing = True
        else:
            return
        out.flush()

    def end(self) -> None:
        """End a line shown in place, keeping what it showed, before anything else is written."""
        if self.showing:
            self.out.write("\n")
            self.out.flush()
            self.showing = False


def _columns() -> int:
    return max(10, shutil.get_terminal_size().columns)


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _tail(text: str, stash: str, width: int) -> tuple[str, str]:
    """The end of ``text + stash`` that fits in ``width`` columns: one row, so
    the next interim can overwrite it with a carriage return."""
    kept: list[str] = []
    used = 0
    whole = text + stash
    for char in reversed(whole):
        used += _width(char)
        if used > width:
            break
        kept.append(char)
    shown = "".join(reversed(kept))
    cut = len(whole) - len(shown)
    split = max(0, len(text) - cut)
    return shown[:split], shown[split:]
