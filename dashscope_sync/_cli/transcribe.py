"""``dashscope-sync transcribe``: a Qwen-ASR-Realtime session from a file or the microphone.

On a terminal the interim transcript is the status line on standard error,
shown in place as it changes (the provisional tail faint), and each
utterance's final transcript goes to standard output on a line of its own;
piped, only the final lines are written, one per utterance. The status line
is finished (cleared, or kept and ended after a failure) before anything
else is written, so nothing is printed over it (`Screen`).

``--timeout`` bounds the whole command from a file (connecting, the upload,
the last transcripts: a `Budget`); with ``--mic``, getting the session going
and, after Ctrl-C, finishing it.

The parser is built here (`add_transcribe`); `_cli/main.py` registers it with
the helpers that carry its exit-code conventions (`TranscribeKit`).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TextIO

import attrs

from .._audio.feed import stream_pcm
from .._client.client import Client
from .._errors import DashScopeError
from .._sessions.transcription import TranscriptionSession, Utterance
from .._wire.families import ASR_LANGUAGES, MODEL_QWEN3_ASR_FLASH_REALTIME
from .._wire.transcription_config import TranscriptionConfig
from .term import Budget, Screen, screen_of

__all__ = ["TranscribeKit", "add_transcribe"]


@attrs.frozen
class TranscribeKit:
    """What the command needs from ``_cli/main.py``, each keeping its exit-code conventions.

    Attributes:
        subcommand: Makes the sub-parser (examples and exit codes in its epilog).
        usage: The usage error (exit 2) for an option and a message.
        client: The `Client` for the parsed arguments (no key: exit 3).
        read_input: Reads the audio file as 16 kHz PCM16 (unusable: exit 5).
        budget: The whole command's `Budget` for the arguments and the audio
            (``--timeout``, or the default wait plus the audio's length unless ``--fast``).
        wait_default: Seconds of the default wait, where there is no audio to add.
        microphone: Opens the default microphone (no ``[audio]`` extra: exit 8).
        url: The argparse type of a ``ws://``/``wss://`` URL.
        workspace: The argparse type of a workspace id.
        region: The argparse type of a region id.
        seconds: The argparse type of a positive number of seconds.
    """

    subcommand: Callable[..., argparse.ArgumentParser]
    usage: Callable[[str, str], Exception]
    client: Callable[[argparse.Namespace], Client]
    read_input: Callable[[str], bytes]
    budget: Callable[[argparse.Namespace, bytes], Budget]
    wait_default: float
    microphone: Callable[[], AbstractContextManager[Any]]
    url: Callable[[str], str]
    workspace: Callable[[str], str]
    region: Callable[[str], str]
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
            "On a terminal the interim text is shown in place as it changes (on standard\n"
            "error); each utterance's final line goes to standard output. With --mic,\n"
            "Ctrl-C ends."
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
    parser.add_argument(
        "--region", type=kit.region, help="region id (default: DASHSCOPE_REGION, cn-beijing)"
    )
    parser.add_argument("--fast", action="store_true", help="upload faster than real time")
    parser.add_argument(
        "--timeout",
        type=kit.seconds,
        default=None,
        help=f"seconds the whole command may take (default: {kit.wait_default:g}, plus the "
        "audio's length unless --fast; with --mic, to connect and, after Ctrl-C, to finish)",
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
    printer = _Printer(out, screen_of(err))
    if args.mic:
        limit = kit.wait_default if args.timeout is None else args.timeout
        return _from_microphone(kit, client, config, limit, printer, err)
    pcm = kit.read_input(args.input)
    budget = kit.budget(args, pcm)
    with budget.bound():
        return _from_file(client, config, pcm, args.fast, budget, printer)


def _from_file(
    client: Client,
    config: TranscriptionConfig,
    pcm: bytes,
    fast: bool,
    budget: Budget,
    printer: _Printer,
) -> int:
    budget.stage = "connecting"
    with client.transcription.connect(config, timeout=budget.left()) as session:
        budget.watch(session)  # closes the session at the deadline, ending every wait
        # The audio goes out on the feed's thread, then session.finish from a
        # thread of ours, while this one prints the transcripts as they come.
        budget.stage = "sending the audio"
        feed = stream_pcm(session, pcm, realtime=not fast)
        failure: list[BaseException] = []

        def finish() -> None:
            try:
                feed.wait()
                budget.stage = "waiting for the last transcripts"
                session.finish(None)  # the budget's timer ends it
            except DashScopeError as exc:
                failure.append(exc)
                session.close()  # wakes the reader below

        finisher = threading.Thread(target=finish, name="dashscope-sync-transcribe", daemon=True)
        finisher.start()
        try:
            _print_all(session, printer, None)
        finally:
            feed.stop()
        finisher.join()
        if failure:
            raise failure[0]
    printer.end()
    return 0


def _from_microphone(
    kit: TranscribeKit,
    client: Client,
    config: TranscriptionConfig,
    limit: float,
    printer: _Printer,
    err: TextIO,
) -> int:
    with (
        kit.microphone() as microphone,
        client.transcription.connect(config, timeout=limit) as session,
    ):
        session.attach(microphone=microphone)
        print(f"listening: session {session.id}; Ctrl-C to end", file=err, flush=True)
        try:
            _print_all(session, printer, None)
        except KeyboardInterrupt:
            printer.end()
            # The last utterance is transcribed before session.finished.
            session.detach()
            finishing = Budget(limit)
            finishing.stage = "finishing the session"
            with finishing.bound():
                finishing.watch(session)
                session.finish(None)
                _print_all(session, printer, None)
    printer.end()
    return 0


def _print_all(session: TranscriptionSession, printer: _Printer, timeout: float | None) -> None:
    for transcript in session.transcripts(timeout=timeout):
        printer.show(transcript)


class _Printer:
    """Writes transcripts: interims as the screen's status line, final lines always.

    Used by one thread (the command's main thread).
    """

    def __init__(self, out: TextIO, screen: Screen | None) -> None:
        self.out = out
        self.screen = screen if screen is not None and screen.live else None

    def show(self, transcript: Utterance) -> None:
        if not transcript.final:
            if self.screen is not None:
                self.screen.status(transcript.text, transcript.stash)
            return
        self.end()  # the interim gives way to the final line
        if transcript.text:
            print(transcript.text, file=self.out, flush=True)

    def end(self) -> None:
        """Clear an interim shown in place, before anything else is written."""
        if self.screen is not None:
            self.screen.finish()
