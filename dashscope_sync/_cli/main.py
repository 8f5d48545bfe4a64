"""The ``dashscope-sync`` command (also ``python -m dashscope_sync``).

Commands:
    demo    a voice turn with the bundled local server: no network, no key
    talk    a voice turn with the real service (or any URL), from a file or
            (--mic) a live conversation with the microphone and speaker
    serve   run the local server until Ctrl-C
    token   print a temporary key as JSON
    translate  a LiveTranslate session from a WAV file (_cli/translate.py)
    speak   text to speech with a Qwen-TTS-Realtime model (_cli/speak.py)
    transcribe  speech recognition of a file or the microphone (_cli/transcribe.py)

It never shows a traceback: every failure is one line on stderr and an exit
code with one meaning (see ``EXIT_*``), so scripts can branch on it. Set
``DASHSCOPE_SYNC_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from .._audio.files import decode_audio, sample_wav_path
from .._client.client import API_KEY_ENV, Client, _check_token
from .._constants import (
    INPUT_SAMPLE_RATE,
    MODEL_QWEN3_OMNI_FLASH_REALTIME,
    VOICE_CHERRY,
)
from .._conversation.metrics import Metrics
from .._conversation.transcript import Transcript
from .._core.response import ResponseResult
from .._errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    DashScopeError,
    DashScopeTimeout,
    TransportError,
    body_summary,
)
from .._fmt import seconds
from .._startup import restore_sigint
from .._version import __version__
from .._wire.config import NOT_GIVEN, SessionUpdate
from .._wire.events import (
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionFailed,
    InputAudioBufferSpeechStopped,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseDone,
)
from .._wire.families import (
    MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
    ModelFamily,
    family_of,
    needs_workspace,
)
from .._wire.regions import REGIONS, WORKSPACE_ENV, is_legacy_host
from .speak import SpeakTools, add_speak_command
from .term import Budget, Finisher, Screen, screen_of
from .transcribe import TranscribeKit, add_transcribe
from .transcript import save_transcript
from .translate import translate_file

if TYPE_CHECKING:
    from .._sessions.conversation import RealtimeSession
    from ..testing import LocalRealtimeServer

__all__ = ["main"]

PROG = "dashscope-sync"

EXIT_OK = 0
#: An unexpected failure, or a response that did not complete.
EXIT_ERROR = 1
#: Bad command-line usage: a bad option value, an --output that cannot be
#: written, a --port that cannot be listened on. The message names the option.
EXIT_USAGE = 2
#: No API key in the environment.
EXIT_NO_KEY = 3
#: The service refused the key.
EXIT_AUTH = 4
#: The input file cannot be used (missing, a directory, an unreadable audio format).
EXIT_BAD_INPUT = 5
#: The network failed or timed out.
EXIT_NETWORK = 6
#: The service refused the request otherwise.
EXIT_API = 7
#: An optional extra this command needs is not installed (the message says
#: which ``pip install`` fixes it).
EXIT_NOT_INSTALLED = 8
#: Interrupted with Ctrl-C.
EXIT_INTERRUPTED = 130

CHUNK = INPUT_SAMPLE_RATE * 2 // 10  # 100 ms of 16 kHz PCM16: the pace the service wants

#: Seconds a command may wait for the service by default, on top of an upload
#: paced like speech (``--timeout`` replaces the sum).
WAIT_DEFAULT = 60.0

#: After the reply is done, how long to wait for the transcript of the
#: question (it comes from a separate model) before giving up on it.
TRANSCRIPT_GRACE = 2.0

DEBUG_ENV = "DASHSCOPE_SYNC_DEBUG"


class _Fail(Exception):
    """Stop with this exit code and one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _usage(flag: str, message: str) -> _Fail:
    return _Fail(EXIT_USAGE, f"argument {flag}: {message}")


def _install(extra: str) -> str:
    """The pip commands that install ``extra``: from PyPI, and from a source checkout."""
    return (
        f"pip install 'dashscope-sync[{extra}]' "
        f"(from a source checkout: pip install -e '.[{extra}]')"
    )


# Option types: a bad value is argparse's usage error (exit 2), naming the option.


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number > 0 ('inf': as fast as possible), got {text!r}"
        )
    return value


def _expire_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1800:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of seconds from 1 to 1800, got {text!r}"
        )
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 to 65535 (0: a free one), got {text!r}"
        )
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    expected = " or ".join(f"{scheme}://" for scheme in schemes)

    def check(text: str) -> str:
        try:
            parts = urlsplit(text)
            ok = parts.scheme in schemes and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a {expected} URL with a host, got {text!r}")
        return text

    return check


def _printable(what: str, *, allow_empty: bool = False) -> Callable[[str], str]:
    def check(text: str) -> str:
        if allow_empty and not text:
            return text
        try:
            return _check_token(text, what)
        except ConfigError:
            raise argparse.ArgumentTypeError(
                f"must be {what}: printable, without spaces, got {text!r}"
            ) from None

    return check


def _region(text: str) -> str:
    if text not in REGIONS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(REGIONS)}; got {text!r}")
    return text


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# Files --------------------------------------------------------------------------


def _check_output(value: str, flag: str = "--output") -> Path:
    """Make sure the reply can be written, before connecting (a real turn costs money).

    The file is opened for appending, so its content is untouched; a file
    created by the check is removed again.
    """
    path = Path(value)
    if path.is_dir():
        raise _usage(flag, f"{value} is a directory; name a file, e.g. {path / 'reply.wav'}")
    parent = path.parent
    if not parent.exists():
        raise _usage(flag, f"cannot write {value}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise _usage(flag, f"cannot write {value}: {parent} is not a directory")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise _usage(flag, f"cannot write {value}: {exc.strerror or exc}") from exc
    if not existed:
        path.unlink(missing_ok=True)
    return path


def _check_record(value: str | None) -> Path | None:
    """``--record DIR``: refused before connecting when DIR is a file or cannot be made."""
    if value is None:
        return None
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise _usage("--record", f"{value} is a file; name a folder to record into")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _usage("--record", f"cannot create {value}: {exc.strerror or exc}") from exc
    return path


def _start_recording(session: RealtimeSession, folder: Path, err: TextIO) -> None:
    """``--record``: the session records into ``folder`` until it closes; without the
    [audio] extra (which mixes the WAV) the frames only, with a note."""
    from .._audio.resample import audio_extra_missing

    audio = not audio_extra_missing("numpy", "soxr")
    session.record(folder, audio=audio)  # completed when the session closes
    note = "" if audio else f" (frames only: conversation.wav needs {_install('audio')})"
    print(f"recording to {folder}{note}", file=err, flush=True)


def _read_input(value: str) -> bytes:
    try:
        pcm, rate, what = decode_audio(value)
    except ConfigError as exc:  # decode_audio says what is wrong and how to convert
        raise _Fail(EXIT_BAD_INPUT, str(exc)) from exc
    if rate == INPUT_SAMPLE_RATE:
        return pcm
    from .._audio.resample import Resampler, audio_extra_missing

    missing = audio_extra_missing("numpy", "soxr")
    if missing:  # the file is fine: what is missing is an extra (exit 8, not 5)
        raise _Fail(
            EXIT_NOT_INSTALLED,
            f"{value}: {what}; converting {rate} Hz to {INPUT_SAMPLE_RATE} Hz needs "
            f"{' and '.join(missing)} from the [audio] extra: {_install('audio')}; or convert "
            f"the file first: ffmpeg -i {shlex.quote(value)} -ar {INPUT_SAMPLE_RATE} -ac 1 out.wav",
        )
    return Resampler(rate, INPUT_SAMPLE_RATE).convert(pcm)


def _write_output(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _Fail(EXIT_ERROR, f"cannot write the reply to {path}: {exc.strerror or exc}") from exc


# The voice turn ----------------------------------------------------------------


def _voice_turn(
    client: Client,
    *,
    model: str,
    pcm: bytes,
    text: str | None,
    voice: str | None,
    instructions: str | None,
    output: Path,
    realtime: bool,
    budget: Budget,
    out: TextIO,
    err: TextIO,
    transcript: Path | None = None,
    record: Path | None = None,
) -> int:
    """Upload, ask, print what was heard and the reply's text, save its audio, print timings."""
    with budget.bound():
        result, turns, metrics = _converse(
            client, model=model, pcm=pcm, text=text, voice=voice, instructions=instructions,
            realtime=realtime, budget=budget, out=out, err=err, record=record,
        )  # fmt: skip
    _write_output(output, result.to_wav_bytes())
    if transcript is not None:
        save_transcript(transcript, turns, out)
    _print_metrics(metrics, err)

    def seconds_or_dash(value: float | None) -> str:
        return "-" if value is None else seconds(value)

    print(
        f"reply: {seconds(result.audio_seconds)} of audio -> {output}\n"
        f"first text {seconds_or_dash(result.first_text_delay)}, "
        f"first audio {seconds_or_dash(result.first_audio_delay)}, "
        f"total {seconds_or_dash(result.total_time)}",
        file=out,
    )
    return EXIT_OK


def _converse(
    client: Client,
    *,
    model: str,
    pcm: bytes,
    text: str | None,
    voice: str | None,
    instructions: str | None,
    realtime: bool,
    budget: Budget,
    out: TextIO,
    err: TextIO,
    record: Path | None = None,
) -> tuple[ResponseResult, Transcript, Metrics]:
    """The turn itself, within ``budget``: connect, upload, ask, print as the reply
    streams; the reply, the session's transcript and its latency figures."""
    started = time.monotonic()
    budget.stage = "connecting"
    with client.realtime.connect(model=model, timeout=budget.left()) as session:
        budget.watch(session)
        print(f"connected: session {session.id} ({seconds(time.monotonic() - started)})", file=err)
        if record is not None:
            _start_recording(session, record, err)
        budget.stage = "configuring the session"
        info = session.update_session(
            SessionUpdate(
                modalities=["text", "audio"],
                turn_detection=None,
                # No voice given: the model family's own default voice.
                voice=voice or NOT_GIVEN,
            ),
            timeout=budget.left(),
        )
        # LiveTranslate answers by itself: follow it from before the audio.
        translating = session.family in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38)
        follower = session.next_response() if translating else None
        heard: list[str] = []
        # Set when the question's transcript (or its failure) arrived.
        transcribed = threading.Event()
        # Set as well when the reply ends, however it ends: the transcript
        # may never come.
        settled = threading.Event()

        def on_transcript(
            event: ConversationItemInputAudioTranscriptionCompleted
            | ConversationItemInputAudioTranscriptionFailed,
        ) -> None:
            if isinstance(event, ConversationItemInputAudioTranscriptionCompleted):
                heard.append(event.transcript)
            transcribed.set()
            settled.set()

        session.on(ConversationItemInputAudioTranscriptionCompleted, on_transcript)
        session.on(ConversationItemInputAudioTranscriptionFailed, on_transcript)
        total = len(pcm) / 2 / INPUT_SAMPLE_RATE
        screen = screen_of(err)
        budget.stage = "sending the audio"
        upload_started = time.monotonic()
        for start in range(0, len(pcm), CHUNK):
            if realtime:
                # Pace like a microphone: this chunk is due once the audio
                # before it has "played".
                due = upload_started + start / 2 / INPUT_SAMPLE_RATE
                time.sleep(max(0.0, due - time.monotonic()))
            session.append_audio(pcm[start : start + CHUNK])
            sent = min(len(pcm), start + CHUNK) / 2 / INPUT_SAMPLE_RATE
            if screen is not None:
                screen.status(f"uploading {sent:5.1f} / {total:.1f} s")
        if screen is not None:
            screen.end_status()  # the upload's last state stays on screen
        if text:
            session.append_text(text)
        finisher: Finisher | None = None
        if translating:
            # LiveTranslate's docs end the audio with session.finish (no
            # commit): it flushes the translation, which streams in meanwhile.
            finisher = Finisher(session)
            finisher.start()
        else:
            session.commit_audio()
        response = follower or session.create_response(instructions=instructions)
        budget.stage = "waiting for the reply"
        if info.input_audio_transcription is not None:
            # Conversation order: what the user said, then the reply. The
            # transcript comes from a separate model, often mid-reply, so
            # the reply (collected meanwhile by `response`) waits for it, or
            # for the reply's end: done, failed, or the connection lost.
            def watch_reply() -> None:
                try:
                    response.wait(None)  # the budget's timer ends it, by closing the session
                except Exception:
                    pass  # raised again below, on this thread, by iter_text and wait
                finally:
                    settled.set()

            watcher = threading.Thread(target=watch_reply, name="dashscope-sync-cli", daemon=True)
            watcher.start()
            settled.wait(budget.left())
            if not transcribed.is_set():
                transcribed.wait(min(TRANSCRIPT_GRACE, budget.left()))
        if heard:
            print(f"you said: {heard[0]}", file=out)
        print("assistant: ", end="", file=out, flush=True)
        # No timeouts of their own: the budget's timer closes the session.
        for chunk in response.iter_text(timeout=None):
            print(chunk, end="", file=out, flush=True)
        print(file=out)
        result = response.wait(None)
        if finisher is not None:
            budget.stage = "finishing the session"
            finisher.result()
        return result, session.transcript, session.metrics


def _print_metrics(metrics: Metrics, err: TextIO) -> None:
    """The session's latency summary, one line per figure that applied (status output)."""
    lines = metrics.lines()
    if not lines:
        return
    plural = "" if metrics.responses == 1 else "s"
    print(f"latency over {metrics.responses} response{plural}:", file=err)
    for line in lines:
        print(f"  {line}", file=err)
    err.flush()


def _local_server_class() -> type[LocalRealtimeServer]:
    try:
        from ..testing import LocalRealtimeServer
    except ImportError as exc:  # websockets is an optional extra
        raise _Fail(EXIT_NOT_INSTALLED, f"the local server cannot run: {exc}") from exc
    return LocalRealtimeServer


def _check_live_extras(echo: str | None, flag: str = "--mic") -> None:
    """Refuse ``flag`` (or --echo aec) without its extra before connecting, with exit 8."""
    from .._audio.devices import import_sounddevice
    from .._audio.resample import audio_extra_missing

    if echo == "aec":
        missing = audio_extra_missing("pywebrtc_audio", "numpy")
        if missing:
            raise _Fail(
                EXIT_NOT_INSTALLED,
                f"--echo aec needs {' and '.join(missing)} from the [aec] extra: {_install('aec')}",
            )
    missing = audio_extra_missing("sounddevice", "numpy")
    if missing:
        raise _Fail(
            EXIT_NOT_INSTALLED,
            f"{flag} needs {' and '.join(missing)} from the [audio] extra: {_install('audio')}",
        )
    try:
        import_sounddevice()
    except ConfigError as exc:  # the system's PortAudio library is missing
        raise _Fail(EXIT_NOT_INSTALLED, f"{flag} cannot run: {exc}") from exc


def _open_speaker(rate: int) -> Any:
    """The default speaker for ``speak --play``; without the [audio] extra, exit 8."""
    _check_live_extras(None, "--play")
    from .._audio.devices import Speaker

    return Speaker(rate=rate)


def _live(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """A live conversation: microphone in, speaker out, server VAD, barge-in; Ctrl-C ends it."""
    from .._audio.devices import Microphone, Speaker

    # Per turn: when the user stopped talking, when the reply's first audio came.
    turns: list[list[float | None]] = []
    # Guards turns: written by the handler thread, read at the end.
    lock = threading.Lock()

    def stopped(event: InputAudioBufferSpeechStopped) -> None:
        with lock:
            turns.append([time.monotonic(), None])

    def audio(event: ResponseAudioDelta) -> None:
        with lock:
            if turns and turns[-1][1] is None:
                turns[-1][1] = time.monotonic()

    def done(event: ResponseDone) -> None:
        print(f"  [{event.response.status}]", file=out, flush=True)

    def summary() -> None:
        with lock:
            delays = [b - a for a, b in turns if a is not None and b is not None]
        text = ", ".join(seconds(d) for d in delays) or "-"
        print(f"turns: {len(turns)}; first audio after you stopped: {text}", file=out, flush=True)

    # --timeout bounds getting the conversation going; the conversation
    # itself lasts until Ctrl-C.
    budget = Budget(WAIT_DEFAULT if args.timeout is None else args.timeout)
    with (
        client.realtime.connect(model=args.model, timeout=budget.left()) as session,
        Speaker() as speaker,
        Microphone() as microphone,
    ):
        session.update_session(
            SessionUpdate(modalities=["text", "audio"], voice=args.voice or NOT_GIVEN),
            timeout=budget.left(),
        )
        session.on(InputAudioBufferSpeechStopped, stopped)
        session.on(ResponseAudioDelta, audio)
        session.on(
            ResponseAudioTranscriptDelta, lambda e: print(e.delta, end="", file=out, flush=True)
        )
        screen = screen_of(out)

        def heard(event: ConversationItemInputAudioTranscriptionCompleted) -> None:
            # Barge-in: the user's words can come mid-reply, never glued onto it.
            if screen is not None:
                screen.new_line()
            print(f"you: {event.transcript}", file=out, flush=True)

        session.on(ConversationItemInputAudioTranscriptionCompleted, heard)
        session.on(ResponseDone, done)
        if args.record is not None:
            _start_recording(session, args.record, err)
        session.attach(speaker=speaker, microphone=microphone, barge_in=True, echo=args.echo)
        print(f"connected: session {session.id}; talk now, Ctrl-C to end", file=err, flush=True)
        try:
            while not session.closed:
                session.wait_for(ResponseDone, timeout=None)
        except KeyboardInterrupt:
            print(file=out)
        finally:
            session.detach()
        summary()
        if args.transcript is not None:
            save_transcript(Path(args.transcript), session.transcript, out)
        _print_metrics(session.metrics, err)
    return EXIT_OK


def _start_server(server: LocalRealtimeServer, host: str, port: int) -> None:
    try:
        server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _usage(
                "--port", f"port {port} on {host} is in use; pick another, or 0 for a free one"
            ) from exc
        raise _usage("--host", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


# Commands -------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    output = _check_output(args.output)
    pcm = _read_input(args.input)
    with _local_server_class()() as server:
        print(f"local server at {server.url} (replies are simulated)", file=err)
        client = Client(server.api_key, base_url=server.url)
        return _voice_turn(
            client,
            model=MODEL_QWEN3_OMNI_FLASH_REALTIME,
            pcm=pcm,
            text=None,
            voice=VOICE_CHERRY,
            instructions=None,
            output=output,
            realtime=False,
            budget=Budget(args.timeout),
            out=out,
            err=err,
        )


def _client(args: argparse.Namespace) -> Client:
    """The client for a realtime command, refusing a model its endpoint does not serve."""
    client = Client(_api_key(), base_url=args.url, workspace=args.workspace, region=args.region)
    family = family_of(args.model)
    if needs_workspace(family) and is_legacy_host(client.realtime_url):
        raise _usage(
            "--workspace",
            f"{args.model} ({family.title}) is served only on a workspace host, not on "
            f"{client.realtime_url}: pass --workspace llm-... (or set {WORKSPACE_ENV}), "
            f"and --region if the workspace is not in {client.region}",
        )
    return client


def _api_key() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise _Fail(EXIT_NO_KEY, f"no API key: set the {API_KEY_ENV} environment variable")
    try:
        return _check_token(key, API_KEY_ENV)
    except ConfigError as exc:
        raise _Fail(EXIT_NO_KEY, f"no usable API key: {exc}") from exc


def _whole_command_timeout(args: argparse.Namespace, pcm: bytes) -> float:
    """``--timeout``, or by default `WAIT_DEFAULT` plus the upload's length at real-time pace."""
    if args.timeout is not None:
        return float(args.timeout)
    paced = 0.0 if args.fast else len(pcm) / 2 / INPUT_SAMPLE_RATE
    return WAIT_DEFAULT + paced


def _cmd_talk(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.mic == (args.input is not None):
        raise _usage("input", "talk needs an audio file to send, or --mic (not both)")
    if args.transcript is not None:
        _check_output(args.transcript, "--transcript")  # before connecting, as --output
    args.record = _check_record(args.record)
    if args.mic:
        _check_live_extras(args.echo)  # before connecting: exit 8 names what to install
        client = _client(args)
        return _live(client, args, out, err)
    output = _check_output(args.output)
    client = _client(args)
    pcm = _read_input(args.input)
    return _voice_turn(
        client,
        model=args.model,
        pcm=pcm,
        text=args.text,
        voice=args.voice,
        instructions=args.instructions,
        output=output,
        realtime=not args.fast,
        budget=Budget(_whole_command_timeout(args, pcm)),
        out=out,
        err=err,
        transcript=None if args.transcript is None else Path(args.transcript),
        record=args.record,
    )


def _cmd_translate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    family = family_of(args.model)
    if family not in (ModelFamily.LIVETRANSLATE, ModelFamily.LIVETRANSLATE_V38):
        raise _usage(
            "--model",
            f"translate needs a LiveTranslate model; {args.model} is a {family.title} model",
        )
    output = _check_output(args.output)
    if args.transcript is not None:
        _check_output(args.transcript, "--transcript")
    pcm = _read_input(args.input)
    client = _client(args)
    budget = Budget(_whole_command_timeout(args, pcm))
    return translate_file(client, args, pcm, output, budget, out, err)


def _transcribe_kit() -> TranscribeKit:
    """The helpers ``transcribe`` (_cli/transcribe.py) shares with the other commands."""

    def microphone() -> Any:
        try:
            from .._audio.devices import Microphone
        except ImportError as exc:  # the [audio] extra, or the system's PortAudio
            raise _Fail(EXIT_NOT_INSTALLED, f"--mic cannot run: {exc}") from exc
        return Microphone()

    return TranscribeKit(
        subcommand=_subcommand,
        usage=_usage,
        client=lambda args: Client(
            _api_key(), base_url=args.url, workspace=args.workspace, region=args.region
        ),
        read_input=_read_input,
        budget=lambda args, pcm: Budget(_whole_command_timeout(args, pcm)),
        wait_default=WAIT_DEFAULT,
        microphone=microphone,
        url=_url("ws", "wss"),
        workspace=_printable("a workspace id"),
        region=_region,
        seconds=_positive_seconds,
    )


def _cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    def log(line: str) -> None:
        print(line, file=err, flush=True)

    if args.speed is not None and args.replay is None:
        raise _usage("--speed", "goes with --replay")
    server = _local_server_class()(
        host=args.host,
        port=args.port,
        api_key=args.api_key or None,
        log_connections=None if args.quiet else log,
    )
    replay = None
    if args.replay is not None:
        speed = 1.0 if args.speed is None else args.speed
        try:
            # Read and checked before listening: a bad recording fails at once.
            replay = server.replay(args.replay, speed=speed)
        except ConfigError as exc:
            raise _Fail(EXIT_BAD_INPUT, f"--replay: {exc}") from exc
    _start_server(server, args.host, args.port)
    try:
        key = server.api_key or "any-key"
        env = f"{API_KEY_ENV}={shlex.quote(key)}"
        print(f"realtime URL: {server.url}", file=out)
        print(f"HTTP base URL: {server.http_base_url}", file=out)
        print(f"API key: {key}", file=out)
        if replay is not None:
            pace = "as fast as possible" if replay.speed is None else f"speed {replay.speed:g}"
            print(
                f"Replaying {len(replay.recording)} frames of {replay.recording.source} "
                f"({pace}) to every client of model {replay.recording.model}",
                file=out,
            )
        print("Try it from another shell:", file=out)
        print(
            f"  {env} {PROG} talk {shlex.quote(str(sample_wav_path()))} "
            f"--url {shlex.quote(server.url)} --fast",
            file=out,
        )
        print(f"  {env} {PROG} token --http-base-url {shlex.quote(server.http_base_url)}", file=out)
        print("Ctrl-C to stop", file=err, flush=True)
        out.flush()
        stop = threading.Event()  # set by nothing: Ctrl-C or SIGTERM ends the wait
        try:
            with _sigterm_interrupts():
                stop.wait()
        except KeyboardInterrupt:
            print("stopping", file=err)
    finally:
        server.close()
    return EXIT_OK


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Let SIGTERM stop a long wait the way Ctrl-C does, on the main thread only.

    A service manager (systemd, ``docker stop``) sends SIGTERM; without this
    the server would die without closing its sessions. The handler raises
    rather than setting an event, since setting one from a signal handler
    can deadlock on the event's own lock.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set on the main thread
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cmd_token(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    client = Client(_api_key(), workspace=args.workspace, http_base_url=args.http_base_url)
    key = client.tokens.create(args.expire, timeout=args.timeout)
    print(json.dumps({"token": key.token, "expires_at": key.expires_at}), file=out)
    return EXIT_OK


# The parser -------------------------------------------------------------------------

_EXIT_CODES = """\
exit codes:
  0 success, 1 other failure, 2 usage (a bad option; the message names it),
  3 no DASHSCOPE_API_KEY, 4 key refused, 5 bad input file, 6 network failure
  or timeout, 7 other service error, 8 an optional extra is not installed,
  130 interrupted"""


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    command = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}\n\n{_EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # An unknown option is reported with this command's usage, not the top level's.
    command.set_defaults(command_parser=command)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Talk to DashScope's Qwen realtime models (Omni, LiveTranslate, Qwen-Audio, "
            "TTS, ASR), or to a local simulator."
        ),
        epilog=(
            "examples:\n"
            f"  {PROG} demo                      # a voice turn, offline, no key\n"
            f"  {PROG} talk question.wav         # a voice turn with the real service\n"
            f"  {PROG} COMMAND --help            # each command's options\n\n"
            f"{_EXIT_CODES}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _subcommand(
        commands,
        "demo",
        summary="a voice turn with the bundled local server (no network, no key)",
        description=(
            "Hold one voice turn with the bundled local server: send a spoken question\n"
            "(a bundled sample unless --input), print what was heard and the simulated\n"
            "reply's text, write the reply's audio as WAV, and print timings. Needs the\n"
            "'testing' extra: pip install 'dashscope-sync[testing]' (from a source\n"
            "checkout: pip install -e '.[testing]')."
        ),
        examples=f"  {PROG} demo\n  {PROG} demo --input question.wav --output answer.wav",
    )
    demo.add_argument("--input", default=str(sample_wav_path()), help="audio file (WAV; FLAC...)")
    demo.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    demo.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        help="seconds the whole command may take (default: 30)",
    )
    demo.set_defaults(run=_cmd_demo)

    talk = _subcommand(
        commands,
        "talk",
        summary=f"a voice turn with the real service ({API_KEY_ENV})",
        description=(
            "Hold one voice turn with the realtime service, using the key in\n"
            f"{API_KEY_ENV}: upload an audio file (any WAV, converted to 16 kHz mono;\n"
            "FLAC/OGG/MP3 with soundfile) at real-time pace (unless --fast), print what\n"
            "was heard and the reply's text as it streams, write the reply's audio as\n"
            "WAV, and print timings. --output is checked before connecting, so a bad\n"
            "path costs no turn. With --mic, hold a live conversation instead."
        ),
        examples=(
            f"  {API_KEY_ENV}=sk-... {PROG} talk question.wav\n"
            f"  {PROG} talk question.wav --text 'Answer briefly.' --voice Ethan --output a.wav\n"
            f"  {PROG} talk question.wav --url ws://127.0.0.1:8765/api-ws/v1/realtime --fast\n"
            f"  {PROG} talk --mic --echo gate --record call/"
        ),
    )
    talk.add_argument(
        "input", nargs="?", help="audio file to send (any WAV; FLAC/OGG/MP3 with soundfile)"
    )
    talk.add_argument(
        "--mic",
        action="store_true",
        help="a live conversation: microphone in, speaker out (the [audio] extra); Ctrl-C ends it",
    )
    talk.add_argument(
        "--echo",
        choices=["gate", "aec"],
        default=None,
        help="with loudspeakers: 'gate' mutes the microphone while the reply plays (no "
        "barge-in); 'aec' cancels the echo (the [aec] extra)",
    )
    talk.add_argument("--output", default="reply.wav", help="where to write the reply audio")
    talk.add_argument(
        "--transcript",
        metavar="FILE",
        help="write the conversation's transcript at the end (.md: Markdown, else JSON)",
    )
    talk.add_argument("--text", help="a text message to send with the audio")
    talk.add_argument(
        "--voice", type=_non_empty, default=None, help="reply voice (default: the model's own)"
    )
    talk.add_argument(
        "--model", type=_non_empty, default=MODEL_QWEN3_OMNI_FLASH_REALTIME, help="model name"
    )
    talk.add_argument("--instructions", help="instructions for this reply")
    talk.add_argument(
        "--url",
        type=_url("ws", "wss"),
        default=None,
        help="realtime WebSocket URL (default: resolved)",
    )
    talk.add_argument(
        "--workspace",
        type=_printable("a workspace id"),
        help="workspace id (default: DASHSCOPE_WORKSPACE)",
    )
    talk.add_argument(
        "--region", type=_region, help="region id (default: DASHSCOPE_REGION, cn-beijing)"
    )
    talk.add_argument(
        "--record",
        metavar="DIR",
        help="record the session into DIR: frames.jsonl (every frame, never the key) and "
        "conversation.wav (you left, the assistant right)",
    )
    talk.add_argument("--fast", action="store_true", help="upload faster than real time")
    talk.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        help=f"seconds the whole command may take (default: {WAIT_DEFAULT:g}, plus the audio's "
        "length unless --fast; with --mic: until the conversation starts)",
    )
    talk.set_defaults(run=_cmd_talk)

    serve = _subcommand(
        commands,
        "serve",
        summary="run the local server until Ctrl-C",
        description=(
            "Run the local realtime server (simulated replies, temporary keys) until\n"
            "Ctrl-C or SIGTERM, and print ready-to-paste talk and token commands that\n"
            "use it.\n"
            "Needs the 'testing' extra: pip install 'dashscope-sync[testing]' (from a\n"
            "source checkout: pip install -e '.[testing]')."
        ),
        examples=(
            f"  {PROG} serve\n  {PROG} serve --port 8765 --api-key sk-mine\n"
            f"  {PROG} serve --replay call/frames.jsonl --speed inf"
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    serve.add_argument(
        "--api-key",
        type=_printable("an API key", allow_empty=True),
        default="sk-local-test",
        help="the key the server accepts ('': any key)",
    )
    serve.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing per connection (by default one line each, accepted or refused)",
    )
    serve.add_argument(
        "--replay",
        metavar="RECORDING",
        default=None,
        help="answer every client with this recording (a frames.jsonl or its directory) "
        "instead of the simulator; a client that diverges gets an error naming the frame",
    )
    serve.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="with --replay: how much faster than recorded (default: 1; 'inf': at once)",
    )
    serve.set_defaults(run=_cmd_serve)

    token = _subcommand(
        commands,
        "token",
        summary=f"print a temporary key as JSON ({API_KEY_ENV})",
        description=(
            f"Ask the service for a temporary API key, using the key in {API_KEY_ENV},\n"
            'and print it as JSON: {"token": "st-...", "expires_at": <epoch seconds>}.'
        ),
        examples=(
            f"  {PROG} token\n"
            f"  {PROG} token --expire 600\n"
            f"  {PROG} token --http-base-url http://127.0.0.1:8765/api/v1   # a local server"
        ),
    )
    token.add_argument(
        "--expire", type=_expire_seconds, default=60, help="lifetime in seconds, 1 to 1800"
    )
    token.add_argument("--workspace", type=_printable("a workspace id"), help="workspace id")
    token.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        help="seconds the whole command may take (default: 30)",
    )
    token.add_argument(
        "--http-base-url",
        type=_url("http", "https"),
        default=None,
        help="HTTP API base (a bare host gets /api/v1)",
    )
    token.set_defaults(run=_cmd_token)

    translate = _subcommand(
        commands,
        "translate",
        summary=f"translate an audio file with a LiveTranslate model ({API_KEY_ENV})",
        description=(
            "Stream an audio file (any WAV; FLAC/OGG/MP3 with soundfile) into a\n"
            "LiveTranslate session, print the translation as it firms up, and write\n"
            "the translated audio as WAV. --output is checked before connecting."
        ),
        examples=(
            f"  {API_KEY_ENV}=sk-... {PROG} translate speech.wav --to en\n"
            f"  {PROG} translate speech.wav --to ja --model qwen3.8-livetranslate-flash-realtime"
            " --workspace llm-xxxx --text-only"
        ),
    )
    translate.add_argument("input", help="audio file to translate")
    translate.add_argument(
        "--to", required=True, type=_non_empty, help="target language code (en, zh, ja...)"
    )
    translate.add_argument(
        "--model",
        type=_non_empty,
        default=MODEL_QWEN3_5_LIVETRANSLATE_FLASH_REALTIME,
        help="a LiveTranslate model",
    )
    translate.add_argument("--output", default="translated.wav", help="the translated audio")
    translate.add_argument(
        "--transcript",
        metavar="FILE",
        help="write the source and translation turns at the end (.md: Markdown, else JSON)",
    )
    translate.add_argument("--voice", type=_non_empty, help="the voice of the translation")
    translate.add_argument("--text-only", action="store_true", help="no translated audio")
    translate.add_argument(
        "--url", type=_url("ws", "wss"), default=None, help="realtime WebSocket URL"
    )
    translate.add_argument(
        "--workspace",
        type=_printable("a workspace id"),
        help="workspace id (default: DASHSCOPE_WORKSPACE)",
    )
    translate.add_argument(
        "--region", type=_region, help="region id (default: DASHSCOPE_REGION, cn-beijing)"
    )
    translate.add_argument("--fast", action="store_true", help="upload faster than real time")
    translate.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=None,
        help=f"seconds the whole command may take (default: {WAIT_DEFAULT:g}, plus the audio's "
        "length unless --fast)",
    )
    translate.set_defaults(run=_cmd_translate)
    add_speak_command(
        commands,
        SpeakTools(
            subcommand=_subcommand,
            api_key=_api_key,
            check_output=_check_output,
            write_output=_write_output,
            speaker=_open_speaker,
            seconds=_positive_seconds,
            url=_url("ws", "wss"),
            workspace=_printable("a workspace id"),
            region=_region,
            non_empty=_non_empty,
        ),
    )
    add_transcribe(commands, _transcribe_kit(), PROG)
    return parser


def _auth_error_text(exc: AuthenticationError) -> str:
    """The refused key in one sentence: what the service said, where the key came from."""
    # The handshake's message starts by saying the connection was refused:
    # once is enough.
    message = exc.message.removeprefix("the server refused the connection: ")
    detail = f"{exc.code}: {message}" if exc.code else message
    extras = [f"HTTP {exc.http_status}"] if exc.http_status is not None else []
    if exc.request_id:
        extras.append(f"request_id={exc.request_id}")
    tail = f" ({', '.join(extras)})" if extras else ""
    return f"the key in {API_KEY_ENV} was not accepted: {detail}{tail}"


def _api_error_text(exc: APIError) -> str:
    """The refusal in one line: a gateway's HTML page as its status and title, not its markup."""
    if exc.http_status is not None and re.search(r"<\s*(!doctype|html|title)\b", exc.message, re.I):
        text = f"the service refused the request: {body_summary(exc.message, exc.http_status)}"
        return text + (f" (request_id={exc.request_id})" if exc.request_id else "")
    return str(exc)


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line; returns the exit code (argparse exits 2 itself on bad usage)."""
    restore_sigint()  # from here on, Ctrl-C is a KeyboardInterrupt handled below
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser: argparse.ArgumentParser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    run: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.run
    screen = Screen(out or sys.stdout, err or sys.stderr)
    out, err = screen.out, screen.err

    def fail(code: int, message: str) -> int:
        # Never glued onto progress, a caption or a half-written reply; the
        # progress stays, to show where the command was.
        screen.finish(keep=True)
        # One line, whatever the message holds (a server's text can have newlines).
        print(f"{PROG}: error: {' '.join(message.split())}", file=err)
        return code

    try:
        return run(args, out, err)
    except _Fail as exc:
        return fail(exc.code, str(exc))
    except AuthenticationError as exc:
        return fail(EXIT_AUTH, _auth_error_text(exc))
    except ConfigError as exc:  # a bad value that got past the option checks
        return fail(EXIT_USAGE, str(exc))
    except (TransportError, DashScopeTimeout) as exc:
        return fail(EXIT_NETWORK, str(exc))
    except APIError as exc:
        return fail(EXIT_API, _api_error_text(exc))
    except DashScopeError as exc:
        return fail(EXIT_ERROR, str(exc))
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except Exception as exc:
        # The last resort: one line, not a traceback, unless asked for.
        if os.environ.get(DEBUG_ENV):
            screen.finish()
            traceback.print_exc(file=err)
        detail = str(exc) or repr(exc)
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror + (f": {exc.filename}" if exc.filename else "")
        return fail(
            EXIT_ERROR, f"unexpected {type(exc).__name__}: {detail} (set {DEBUG_ENV}=1 for details)"
        )
