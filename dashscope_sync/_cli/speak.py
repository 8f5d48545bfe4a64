"""``dashscope-sync speak``: text to speech with a Qwen-TTS-Realtime model.

``speak TEXT`` speaks one text; ``speak -`` reads standard input and speaks
each line as a segment as soon as it is read (so the audio of the first line
starts while later lines are still being typed or piped). The audio goes to
``--output FILE`` (WAV for PCM, else the format's own file) or, with
``--play``, to the speaker (the ``[audio]`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TextIO

import attrs

from .._client.client import API_KEY_ENV, Client
from .._errors import ConfigError
from .._fmt import seconds
from .._sessions.speech import Speech, SpeechResult
from .._wire.speech_config import MODEL_QWEN3_TTS_FLASH_REALTIME, SpeechConfig
from .term import Budget, screen_of

__all__ = ["SpeakTools", "add_speak_command"]

PROG = "dashscope-sync"


@attrs.frozen
class SpeakTools:
    """The command line's shared helpers, handed over by ``_cli`` (which imports this module).

    Attributes:
        subcommand: Makes the sub-parser (examples and exit codes in its epilog;
            an unknown option shows this command's usage).
        api_key: The key from the environment (none: exit 3).
        check_output: Checks --output can be written, before connecting (exit 2).
        write_output: Writes the audio file (a failure: exit 1, one line).
        speaker: Opens the default speaker at a rate (no ``[audio]`` extra: exit 8).
        seconds, url, workspace, region, non_empty: The argparse types of those options.
    """

    subcommand: Callable[..., argparse.ArgumentParser]
    api_key: Callable[[], str]
    check_output: Callable[[str], Path]
    write_output: Callable[[Path, bytes], None]
    speaker: Callable[[int], AbstractContextManager[Any]]
    seconds: Callable[[str], float]
    url: Callable[[str], str]
    workspace: Callable[[str], str]
    region: Callable[[str], str]
    non_empty: Callable[[str], str]


def add_speak_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], tools: SpeakTools
) -> None:
    """Register ``speak`` with its options and help."""
    speak = tools.subcommand(
        commands,
        "speak",
        summary=f"speak text with a Qwen-TTS-Realtime model ({API_KEY_ENV})",
        description=(
            "Speak TEXT (or, with -, each line of standard input as it is read) with a\n"
            "Qwen-TTS-Realtime model, and write the audio to --output (WAV for PCM) or\n"
            "play it with --play (the [audio] extra). --output is checked before connecting."
        ),
        examples=(
            f'  {API_KEY_ENV}=sk-... {PROG} speak "Hello, I am Qwen." --output hello.wav\n'
            f'  {PROG} speak "Guten Tag." --voice Ethan --format mp3 --output tag.mp3\n'
            f"  llm-chat | {PROG} speak - --play --speed 1.2"
        ),
    )
    speak.add_argument("text", help="the text to speak, or - to read lines from standard input")
    speak.add_argument(
        "--model",
        type=tools.non_empty,
        default=MODEL_QWEN3_TTS_FLASH_REALTIME,
        help=f"a Qwen-TTS-Realtime model (default {MODEL_QWEN3_TTS_FLASH_REALTIME})",
    )
    speak.add_argument("--voice", type=tools.non_empty, help="the voice (default Cherry)")
    speak.add_argument(
        "--format",
        choices=("pcm", "wav", "mp3", "opus"),
        default="pcm",
        help="the audio format (pcm is written as WAV)",
    )
    speak.add_argument(
        "--rate",
        type=int,
        choices=(8000, 16000, 24000, 48000),
        default=24000,
        help="the sample rate in Hz",
    )
    speak.add_argument("--speed", type=float, help="speech rate, 0.5 to 2.0")
    speak.add_argument("--language", help="the text's language (Auto, English, Chinese...)")
    target = speak.add_mutually_exclusive_group()
    target.add_argument("--output", help="the audio file to write (default speech.wav)")
    target.add_argument("--play", action="store_true", help="play the speech (the [audio] extra)")
    speak.add_argument("--url", type=tools.url, default=None, help="realtime WebSocket URL")
    speak.add_argument(
        "--workspace", type=tools.workspace, help="workspace id (default: DASHSCOPE_WORKSPACE)"
    )
    speak.add_argument(
        "--region", type=tools.region, help="region id (default: DASHSCOPE_REGION, cn-beijing)"
    )
    speak.add_argument(
        "--timeout",
        type=tools.seconds,
        default=60.0,
        help="seconds the whole command may take, reading standard input included (default 60)",
    )
    speak.set_defaults(run=lambda args, out, err: speak_command(args, out, err, tools))


def _lines(stream: TextIO, budget: Budget) -> Iterator[str]:
    """The stream's non-empty lines as they are read, read on a thread of their own so
    that a pipe that stops writing ends at the deadline too (the reader is a daemon)."""
    lines: queue.Queue[str | BaseException | None] = queue.Queue()

    def read() -> None:
        try:
            for line in stream:
                if line.strip():
                    lines.put(line.strip())
            lines.put(None)
        except BaseException as exc:  # raised again on the command's thread
            lines.put(exc)

    threading.Thread(target=read, name="dashscope-sync-stdin", daemon=True).start()
    while True:
        try:
            item = lines.get(timeout=budget.left())
        except queue.Empty:
            raise budget.error() from None
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def speak_command(args: argparse.Namespace, out: TextIO, err: TextIO, tools: SpeakTools) -> int:
    """Run ``speak``: every check before connecting, then the speeches in order. Returns 0."""
    config = SpeechConfig(
        model=args.model,
        voice=args.voice,
        response_format=args.format,
        sample_rate=args.rate,
        speech_rate=args.speed,
        language_type=args.language,
    )
    if args.text != "-" and not args.text.strip():
        raise ConfigError("argument text: must not be empty")
    output = None
    if not args.play:
        default = "speech.wav" if args.format in ("pcm", "wav") else f"speech.{args.format}"
        output = tools.check_output(args.output or default)
    client = Client(
        tools.api_key(), base_url=args.url, workspace=args.workspace, region=args.region
    )
    # Opened before connecting: no [audio] extra or no device fails at no cost.
    speaker = tools.speaker(args.rate) if args.play else None
    budget = Budget(args.timeout)
    texts = _lines(sys.stdin, budget) if args.text == "-" else iter([args.text])
    with speaker if speaker is not None else contextlib.nullcontext(), budget.bound():
        results = _speak(client, config, texts, args.text == "-", speaker, budget, err)
    combined = SpeechResult(
        audio=b"".join(result.audio for result in results),
        response_format=args.format,
        sample_rate=args.rate,
        characters=sum(result.characters for result in results),
        first_audio_delay=results[0].first_audio_delay,
        text=" ".join(result.text for result in results),
    )
    where = "played"
    if output is not None:
        tools.write_output(output, combined.to_file_bytes())
        where = f"-> {output}"
    length = combined.duration
    shown = f"{seconds(length)} of audio" if length is not None else f"{len(combined.audio)} bytes"
    first = combined.first_audio_delay
    delay = f", first audio after {seconds(first)}" if first is not None else ""
    print(f"speech: {shown}, {combined.characters} characters{delay} {where}", file=out)
    return 0


def _speak(
    client: Client,
    config: SpeechConfig,
    texts: Iterator[str],
    texts_from_stdin: bool,
    speaker: Any,
    budget: Budget,
    err: TextIO,
) -> list[SpeechResult]:
    """The speeches, within ``budget``: connect, speak each text, wait for all the audio."""
    screen = screen_of(err)
    budget.stage = "connecting"
    with client.speech.connect(config, timeout=budget.left()) as session:
        budget.watch(session)  # closes the session at the deadline, ending any wait
        if speaker is not None:
            session.attach(speaker=speaker)
        try:
            budget.stage = "reading standard input" if texts_from_stdin else "sending the text"
            speeches: list[Speech] = []
            for text in texts:  # each line of standard input as it is read
                speeches.append(session.speak(text))
                if screen is not None:
                    screen.status(f"speaking: {len(speeches)} sent")
            if not speeches:
                raise ConfigError("standard input had no text to speak")
            budget.stage = "waiting for the audio"
            results = []
            for done, speech in enumerate(speeches, 1):
                results.append(speech.wait(budget.left()))
                if screen is not None:
                    screen.status(f"speaking: {done} / {len(speeches)} done")
            if speaker is not None:
                budget.stage = "playing the audio"
                speaker.drain(budget.left())
        finally:
            if speaker is not None:
                session.detach()
        if screen is not None:
            screen.finish()  # the status line is cleared before the summary
    return results
