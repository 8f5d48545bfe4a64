"""``--transcript FILE`` of ``talk`` and ``translate``: the transcript, written at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from .._conversation.transcript import Transcript
from .._errors import ConfigError

__all__ = ["save_transcript"]


def save_transcript(path: Path, transcript: Transcript, out: TextIO) -> None:
    """Write ``transcript`` to ``path``: Markdown for a ``.md`` name, else JSON.

    Raises:
        ConfigError: The file cannot be written.
    """
    markdown = path.suffix.lower() in (".md", ".markdown")
    text = transcript.to_markdown() if markdown else transcript.to_json() + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the transcript to {path}: {exc.strerror or exc}") from exc
    print(f"transcript: {len(transcript)} turns -> {path}", file=out)
