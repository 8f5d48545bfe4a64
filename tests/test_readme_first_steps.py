"""What a new user reads first (the README, then Getting started): it runs as written and says what they need."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
GETTING_STARTED = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
CLI_PAGE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")

# Both modes (issue 18): each test runs with threads and again on a ds.Reactor.
pytestmark = [pytest.mark.timeout(60), pytest.mark.both_modes]


def section(title: str, text: str = README) -> str:
    """The text from a heading to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    assert match is not None, title
    end = re.search(rf"^#{{1,{len(match[1])}}} ", text[match.end() :], re.M)
    return text[match.end() : match.end() + end.start() if end else None]


def test_quickstart_runs_as_written(
    server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Getting started's first session runs in an empty folder (against the local server) and saves the reply."""
    code = section("A first real session", GETTING_STARTED).split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)  # no question file lying around: it must use what ships
    monkeypatch.setattr(
        ds, "Client", functools.partial(ds.Client, server.api_key, base_url=server.url)
    )
    exec(compile(code, "README quickstart", "exec"), {})
    assert len(ds.load_wav(tmp_path / "reply.wav", sample_rate=ds.OUTPUT_SAMPLE_RATE)) > 0


def test_readme_example_runs_as_written(
    server: LocalRealtimeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's first session runs in an empty folder (against the local server) and saves the reply."""
    code = section("A first session").split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 10  # the landing page's example stays short
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        ds, "Client", functools.partial(ds.Client, server.api_key, base_url=server.url)
    )
    exec(compile(code, "README first session", "exec"), {})
    assert len(ds.load_wav(tmp_path / "reply.wav", sample_rate=ds.OUTPUT_SAMPLE_RATE)) > 0


def test_readme_names_rates_and_usage_fields() -> None:
    """The output rate constant and the usage fields are documented, not only seen in output."""
    quickstart = section("A first real session", GETTING_STARTED)
    assert "ds.OUTPUT_SAMPLE_RATE" in quickstart and "ds.INPUT_SAMPLE_RATE" in quickstart
    for field in ("input_tokens", "output_tokens", "total_tokens", "audio_tokens"):
        assert f"`{field}`" in quickstart, field


def test_readme_command_line_lists_every_command() -> None:
    """The command-line page shows every subcommand, translate included, in its own words."""
    from dashscope_sync._cli.main import _parser

    commands = next(action for action in _parser()._actions if action.dest == "command").choices
    assert commands is not None
    text = CLI_PAGE.split("<!-- generated: command-line reference -->")[0]
    for name in commands:
        assert f"dashscope-sync {name}" in text, name


def test_first_paragraph_names_every_family() -> None:
    """The opening paragraph, of the README and of the docs' home page, names every model family the package speaks, not only Qwen-Omni."""
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for opening in (README.split("\n\n", 2)[1], home.split("\n\n", 2)[1]):
        for family in ds.ModelFamily:
            assert family.title.split(" ")[0] in opening, family
        for prefix in ("livetranslate", "qwen-audio", "qwen3.8-omni"):
            assert prefix in opening
