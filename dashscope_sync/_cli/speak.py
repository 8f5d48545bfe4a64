"""``dashscope-sync speak``: text to speech with a Qwen-TTS-Realtime model.

``speak TEXT`` speaks one text; ``speak -`` reads standard input and speaks
each line as a segment as soon as it is read (so the audio of the first line
starts while later lines are still being typed or piped). The audio goes to
``--output FILE`` (WAV for PCM, else the format's own file) or, with
``--play``, to the speaker (the ``[audio]`` extra).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import attrs

from .._client.client import API_KEY_ENV, Client
from .._errors import ConfigError
from .._fmt import seconds
from .._sessions.speech import Speech, SpeechResult
from .._wire.speech_config import MODEL_QWEN3_TTS_FLASH_REALTIME, SpeechConfig

__all__ = ["SpeakTools", "add_speak_command"]

PROG = "dashscope-sync"


@attrs.frozen
class SpeakTools:
    """The command line's shared helpers, handed over by ``_cli`` (which imports this module)."""

    api_key: Callable[[], str]
    check_output: Callable[[str], Path]
    seconds: Callable[[str], float]
    url: Callable[[str], str]
    workspace: Callable[[str], str]
    non_empty: Callable[[str], str]
    exit_codes: str


def add_speak_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], tools: SpeakTools
) -> None:
    """Register ``speak`` with its options and help."""
    speak = commands.add_parser(
        "speak",
        help=f"speak text with a Qwen-TTS-Realtime model ({API_KEY_ENV})",
        description=(
            "Speak TEXT (or, with -, each line of standard input as it is read) with a\n"
            "Qwen-TTS-Realtime model, and write the audio to --output (WAV for PCM) or\n"
            "play it with --play (the [audio] extra). --output is checked before connecting."
        ),
        epilog=(
            "examples:\n"
            f'  {API_KEY_ENV}=sk-... {PROG} speak "Hello, I am Qwen." --output hello.wav\n'
            f'  {PROG} speak "Guten Tag." --voice Ethan --format mp3 --output tag.mp3\n'
            f"  llm-chat | {PROG} speak - --play --speed 1.2\n\n"
            f"{tools.exit_codes}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    speak.add_argument("--region", help="region id (default: DASHSCOPE_REGION, cn-beijing)")
    speak.add_argument("--timeout", type=tools.seconds, default=60.0, help="seconds to wait")
    speak.set_defaults(run=lambda args, out, err: speak_command(args, out, err, tools))


def _lines(stream: TextIO) -> Iterator[str]:
    for line in stream:
        text = line.strip()
        if text:
            yield text


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
    texts = _lines(sys.stdin) if args.text == "-" else iter([args.text])
    results: list[SpeechResult] = []
    with client.speech.connect(config, timeout=args.timeout) as session:
        speaker = None
        if args.play:
            from .._audio.devices import Speaker

            speaker = Speaker(rate=args.rate)
            session.attach(speaker=speaker)
        try:
            speeches: list[Speech] = [session.speak(text) for text in texts]
            if not speeches:
                raise ConfigError("standard input had no text to speak")
            for speech in speeches:
                results.append(speech.wait(args.timeout))
            if speaker is not None:
                speaker.drain(args.timeout)
        finally:
            if speaker is not None:
                session.detach()
                speaker.close()
    audio = b"".join(result.audio for result in results)
    combined = SpeechResult(
        audio=audio,
        response_format=args.format,
        sample_rate=args.rate,
        characters=sum(result.characters for result in results),
        first_audio_delay=results[0].first_audio_delay,
        text=" ".join(result.text for result in results),
    )
    where = "played"
    if output is not None:
        try:
            combined.save(output)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
        where = f"-> {output}"
    length = combined.duration
    shown = f"{seconds(length)} of audio" if length is not None else f"{len(audio)} bytes"
    first = combined.first_audio_delay
    delay = f", first audio after {seconds(first)}" if first is not None else ""
    print(f"speech: {shown}, {combined.characters} characters{delay} {where}", file=out)
    return 0
