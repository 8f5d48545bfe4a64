"""The command line on a real terminal (a pty), read back as a person sees the screen."""

from __future__ import annotations

import fcntl
import io
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as _cli
from dashscope_sync._cli.term import Screen
from dashscope_sync.testing import LocalRealtimeServer

from ._proc import INTERRUPTIBLE

# Single mode (issue 18): the sessions here are opened by a child process (the
# command or the example run as a user runs it), which the test's ds.Reactor
# cannot reach, and no public option tells it to use one; the same code paths
# run in both modes in-process (test_cli*.py, test_docs_site.py).
pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.name != "posix", reason="ptys are POSIX"),
]

SAMPLE = str(ds.sample_wav_path())
_ESCAPE = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])")


def screen_rows(output: str, width: int) -> list[str]:
    """What a terminal ``width`` columns wide shows after ``output``: its rows, right-trimmed.

    Enough of a terminal for what the command writes: printable text
    (wrapping at the edge), carriage return, newline, erase-to-end-of-line
    (``ESC [ K``) and colours (ignored). Any other escape fails the test.
    """
    rows: list[list[str]] = [[]]
    row, col = 0, 0
    pos = 0
    while pos < len(output):
        char = output[pos]
        if char == "\x1b":
            found = _ESCAPE.match(output, pos)
            assert found is not None, f"unknown escape at {output[pos : pos + 10]!r}"
            if found[2] == "K":
                del rows[row][col:]
            else:
                assert found[2] == "m", f"unexpected escape {found[0]!r}"
            pos = found.end()
            continue
        pos += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
        else:
            if col == width:  # the cursor wraps to the next row
                row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
            cells = rows[row]
            cells += [" "] * (col - len(cells))
            if col < len(cells):
                cells[col] = char
            else:
                cells.append(char)
            col += 1
        while len(rows) <= row:
            rows.append([])
    return ["".join(cells).rstrip() for cells in rows]


class Terminal:
    """A command run with standard output and error on one pty ``width`` columns wide."""

    def __init__(self, *argv: str, width: int = 80, key: str = "", cwd: Path | None = None) -> None:
        self.width = width
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
        env = {**os.environ, "DASHSCOPE_API_KEY": key, "TERM": "xterm"}
        env.pop("COLUMNS", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dashscope_sync", *argv],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            **INTERRUPTIBLE,
        )
        os.close(slave)
        self._master = master
        # Guards _data: appended by the reader thread, read by the test.
        self._lock = threading.Lock()
        self._data = bytearray()
        self._grew = threading.Condition(self._lock)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            with self._grew:
                if not chunk:
                    self._grew.notify_all()
                    return
                self._data += chunk
                self._grew.notify_all()

    def wait_for(self, text: bytes, timeout: float = 30) -> None:
        """Block until ``text`` has been written to the terminal."""
        with self._grew:
            assert self._grew.wait_for(
                lambda: text in self._data or not self._reader.is_alive(), timeout
            ), f"{text!r} never came: {bytes(self._data)!r}"
            assert text in self._data, f"{text!r} never came: {bytes(self._data)!r}"

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:  # a failed test: do not leave the command behind
            self.proc.kill()
        self.proc.wait(timeout=40)
        self._reader.join(timeout=10)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1

    def finish(self) -> tuple[int, str, list[str]]:
        """Wait for the command; its exit code, everything it wrote, and the screen."""
        code = self.proc.wait(timeout=40)
        self._reader.join(timeout=10)
        raw = bytes(self._data).decode("utf-8", "replace").replace("\r\n", "\n")
        rows = [row for row in screen_rows(raw, self.width) if row]
        return code, raw, rows


def test_translate_lines_are_not_garbled_at_60_columns(tmp_path: Path) -> None:
    """translate's caption never shares a line with the translation: nothing erased, nothing stale."""
    # Paced deltas: the caption is drawn by the handler thread while the translation
    # streams; sent all at once, a loaded machine may run that thread only after the
    # reply is done and the caption closed, and no caption is ever drawn.
    with (
        LocalRealtimeServer(delta_delay=0.02) as server,
        Terminal(
            "translate", SAMPLE, "--to", "zh", "--url", server.url, "--fast",
            "--output", "t.wav", width=60, key=server.api_key, cwd=tmp_path,
        ) as term,
    ):  # fmt: skip
        code, raw, rows = term.finish()
    assert code == 0, raw
    assert "\x1b[2m" in raw  # the live caption was shown, faint tail and all
    expected = "translation (zh): This is a simulated translation into zh of the audio."
    assert rows[0].startswith("connected: session ")
    assert rows[1:3] == [expected[:60], expected[60:]], rows
    assert rows[3:] == ["audio: 3.18 s -> t.wav"], rows


def test_translate_shows_connected_and_upload_progress(
    server: LocalRealtimeServer, tmp_path: Path
) -> None:
    """translate, like talk, says it connected and shows the upload's progress in place."""
    # --fast: the progress is drawn per chunk either way; real-time pacing only took 3.8 s.
    with Terminal(
        "translate", SAMPLE, "--to", "en", "--url", server.url, "--fast",
        "--output", str(tmp_path / "t.wav"), key=server.api_key,
    ) as term:  # fmt: skip
        term.wait_for(b"uploading")
        code, raw, rows = term.finish()
    assert code == 0, raw
    assert rows[0].startswith("connected: session ")
    assert "uploading   3.8 / 3.8 s" in raw
    assert not any("uploading" in row for row in rows)  # cleared, not left behind


def test_ctrl_c_during_the_upload_is_a_line_of_its_own(
    server: LocalRealtimeServer, tmp_path: Path
) -> None:
    """Ctrl-C during talk's upload prints the error on its own line, not glued to the progress."""
    with Terminal(
        "talk", SAMPLE, "--url", server.url, "--output", str(tmp_path / "r.wav"),
        key=server.api_key,
    ) as term:  # fmt: skip
        term.wait_for(b"uploading")
        term.proc.send_signal(signal.SIGINT)
        code, raw, rows = term.finish()
    assert code == _cli.EXIT_INTERRUPTED, raw
    assert "Traceback" not in raw
    assert rows[-2].startswith("uploading "), rows  # where the upload stopped, kept
    assert rows[-1] == "dashscope-sync: error: interrupted", rows


def test_error_after_the_prompt_starts_its_own_line(
    server: LocalRealtimeServer, tmp_path: Path
) -> None:
    """A timeout while 'assistant: ' waits for text prints the error on the next line."""
    server.on_client_event("response.create", [])  # the reply never starts
    with Terminal(
        "talk", SAMPLE, "--url", server.url, "--fast", "--timeout", "2",
        "--output", str(tmp_path / "r.wav"), key=server.api_key,
    ) as term:  # fmt: skip
        code, raw, rows = term.finish()
    assert code == _cli.EXIT_NETWORK, raw
    assert rows[-2].startswith("assistant:"), rows
    assert rows[-1].startswith("dashscope-sync: error: timed out after 2 s (--timeout)"), rows


class TtyText(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no descriptor: the width falls back to 80")


class TestScreen:
    """The screen's bookkeeping, without a process: what a terminal would show."""

    def test_new_line_ends_a_half_written_line(self) -> None:
        """A line started mid-reply (what the user said, on barge-in) gets a line of its own."""
        out = TtyText()
        screen = Screen(out, out)
        print("assistant: The weather in", end="", file=screen.out, flush=True)
        screen.new_line()
        print("you: stop", file=screen.out)
        assert screen_rows(out.getvalue(), 80) == ["assistant: The weather in", "you: stop", ""]

    def test_status_never_wraps_with_wide_characters(self) -> None:
        """A caption of wide (CJK) characters is cut to the width in columns, keeping its end."""
        err = TtyText()
        screen = Screen(TtyText(), err)
        screen.status("这是一个很长的句子" * 10, "。", prefix="uploading 1.0 / 3.8 s: ")
        shown = screen_rows(err.getvalue(), 80)[0]
        width = sum(2 if "\u4e00" <= c <= "\u9fff" or c == "。" else 1 for c in shown)
        assert width <= 79
        assert shown.startswith("uploading 1.0 / 3.8 s: …") and shown.endswith("句子。")

    def test_pipe_gets_no_status_and_no_escapes(self) -> None:
        """Off a terminal there is no status line and no escape sequence, only the lines."""
        out, err = io.StringIO(), io.StringIO()
        screen = Screen(out, err)
        screen.status("uploading 1.0 / 3.8 s")
        print("assistant: hi", file=screen.out)
        screen.finish(keep=True)
        assert (out.getvalue(), err.getvalue()) == ("assistant: hi\n", "")
