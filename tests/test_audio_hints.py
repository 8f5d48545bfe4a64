"""What load_audio says about a file it cannot use: the real problem and the fix that works."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import dashscope_sync as ds

from .conftest import need


def test_text_file_is_not_told_to_install_soundfile(tmp_path: Path) -> None:
    """A Markdown file is said to hold text; no audio package is offered as the fix."""
    path = tmp_path / "README.md"
    path.write_text("# Notes\n\nSome *Markdown* text, not speech.\n")
    with pytest.raises(ds.ConfigError) as info:
        ds.load_audio(path)
    message = str(info.value)
    assert "holds text" in message and "'# Notes'" in message
    assert "soundfile" not in message and "pip install" not in message


def test_mp3_hint_converts_the_file_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without soundfile, an MP3's ffmpeg hint names that MP3, not a made-up in.flac."""
    monkeypatch.setitem(sys.modules, "soundfile", None)
    path = tmp_path / "my talk.mp3"
    path.write_bytes(b"ID3\x03\x00" + bytes(200))
    with pytest.raises(ds.ConfigError) as info:
        ds.load_audio(path)
    message = str(info.value)
    assert "an MP3 file" in message and "soundfile" in message
    assert f"ffmpeg -i '{path}' -ar 16000 -ac 1 out.wav" in message
    assert "in.flac" not in message


def test_fake_mp3_is_not_said_to_be_missing(tmp_path: Path) -> None:
    """With soundfile, an MP3 that holds no valid audio is said so, not 'File does not exist'."""
    need("soundfile")
    path = tmp_path / "fake.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"garbage, not frames " * 10)
    with pytest.raises(ds.ConfigError) as info:
        ds.load_audio(path)
    message = str(info.value)
    assert "an MP3 file, but its content cannot be decoded" in message
    assert "does not exist" not in message


@pytest.mark.parametrize("missing", ["soxr", "sounddevice", "pywebrtc_audio"])
def test_install_hints_work_before_and_after_publishing(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Each missing-extra hint gives the PyPI form and the form that works from a checkout."""
    from dashscope_sync._audio.devices import import_sounddevice
    from dashscope_sync._audio.echo import EchoCanceller

    monkeypatch.setitem(sys.modules, missing, None)
    extra = "aec" if missing == "pywebrtc_audio" else "audio"
    with pytest.raises(ds.ConfigError) as info:
        if missing == "soxr":
            ds.Resampler(44100, 16000)
        elif missing == "sounddevice":
            import_sounddevice()
        else:
            EchoCanceller(24000)
    message = str(info.value)
    assert f"pip install 'dashscope-sync[{extra}]'" in message
    assert f"pip install -e '.[{extra}]'" in message
