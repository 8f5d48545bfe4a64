"""Every Python block and every CLI example in docs/ and README.md runs, against the local server.

Blocks are collected from the Markdown (one test per Python block, one per
``dashscope-sync`` line of a ``sh`` block; ids name the page and line). Each runs
in an empty folder holding the files the docs name (``question.wav``,
``speech.wav``, ``photo.jpg``, ``corporate-ca.pem``), with ``DASHSCOPE_API_KEY``
set and every ``ds.Client`` pointed at a `LocalRealtimeServer`: the pages are
written for the real service, and the local server stands in for it.

An HTML comment on the line right before a fence changes how its block runs:

- ``<!-- skip: why -->``: not run (it needs a microphone, the real service...);
  reported as skipped with that reason, which must be given.
- ``<!-- continue -->``: runs after the page's previous Python block, in its
  namespace (a guide told as a story).
- ``<!-- offline: why -->``: runs without the local server (it only builds
  clients, and may assert the real hosts).

A Python block that defines ``test_`` functions is a pytest recipe: it runs under
pytest in a child process and must pass. The MkDocs build itself (``mkdocs build
--strict``) runs here too when the ``[docs]`` extra is installed, and in CI.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

import dashscope_sync as ds
from dashscope_sync._cli import main as cli_main
from dashscope_sync._cli import speak as cli_speak
from dashscope_sync._cli import transcribe as cli_transcribe
from dashscope_sync._cli import translate as cli_translate
from dashscope_sync.testing import LocalRealtimeServer

from .conftest import need

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

# Both modes (issue 18) for the blocks that run in-process (Python blocks and
# command lines), marked both_modes one by one; the site build and link checks
# open no session.
pytestmark = pytest.mark.timeout(90)

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*(\w[\w-]*)\s*(?::\s*(.*?))?\s*-->$")
#: What a marker may say, and whether it must give a reason.
_MARKERS = {"skip": True, "continue": False, "offline": True}
_CLI = "dashscope-sync"
#: What a page may leave open, closed after its block ran.
SESSIONS = (ds.RealtimeSession, ds.SpeechSession, ds.TranscriptionSession)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it starts, its language, its code and its marker."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str | None
    reason: str | None
    previous: Block | None  # the page's Python block before it, for "continue"

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with the marker on the line right before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous_python: Block | None = None
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        marker = reason = None
        above = lines[index - 1].strip() if index else ""
        found = _MARKER.match(above)
        if found:
            marker, reason = found.group(1), found.group(2)
        block = Block(
            page,
            index + 1,
            fence.group(1),
            "\n".join(lines[index + 1 : end]) + "\n",
            marker,
            reason,
            previous_python,
        )
        blocks.append(block)
        if block.lang == "python":
            previous_python = block
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in parse(page)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]
CLI_BLOCKS = [
    b
    for b in ALL_BLOCKS
    if b.lang == "sh" and any(line.startswith(_CLI + " ") for line in b.code.splitlines())
]
CLI_LINES = [
    (block, offset, line)
    for block in CLI_BLOCKS
    for offset, line in enumerate(block.code.splitlines(), start=1)
    if line.strip() and not line.lstrip().startswith("#")
]


def _skip_unless_runnable(block: Block) -> None:
    if block.marker == "skip":
        pytest.skip(f"{block.id}: {block.reason}")


# The folder and the server the pages run against --------------------------------------


@dataclass
class Stage:
    """The local server the docs' clients are pointed at, and the folder they run in."""

    server: LocalRealtimeServer
    folder: Path


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    """An empty folder with the files the docs name, and a local server in the environment."""
    for name in ("question.wav", "speech.wav", "input.wav"):
        shutil.copyfile(ds.sample_wav_path(), tmp_path / name)
    shutil.copyfile(ROOT / "examples" / "sunny_lake.jpg", tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    for name in ("DASHSCOPE_WORKSPACE", "DASHSCOPE_REGION", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with LocalRealtimeServer() as server:
        monkeypatch.setenv(ds.API_KEY_ENV, server.api_key or "")
        yield Stage(server, tmp_path)


def _point_clients_at(server: LocalRealtimeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``ds.Client`` the docs or the command line make talks to ``server``."""

    class LocalClient(ds.Client):
        def __init__(self, api_key: str | None = None, **kwargs: Any) -> None:
            base = kwargs.get("base_url")
            # A block that starts a server of its own keeps its loopback URL.
            if not (isinstance(base, str) and base.startswith("ws://127.0.0.1")):
                kwargs["base_url"] = server.url
                kwargs["http_base_url"] = server.http_base_url
            super().__init__(api_key, **kwargs)

    monkeypatch.setattr(ds, "Client", LocalClient)
    for module in (cli_main, cli_speak, cli_transcribe, cli_translate):
        monkeypatch.setattr(module, "Client", LocalClient)


def _chain(block: Block) -> list[Block]:
    """The block and, for "continue", the blocks it continues, first first."""
    chain = [block]
    while chain[0].marker == "continue":
        previous = chain[0].previous
        assert previous is not None, f"{chain[0].id}: continues no Python block"
        chain.insert(0, previous)
    return chain


def _defines_tests(code: str) -> bool:
    return any(
        isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        for node in ast.parse(code).body
    )


# The tests -----------------------------------------------------------------------------


@pytest.mark.both_modes
@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs(block: Block, stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python block of the docs runs as written against the local server (or says why not)."""
    _skip_unless_runnable(block)
    chain = _chain(block)
    for part in chain:
        assert part.marker != "skip", f"{block.id} continues {part.id}, which is skipped"
    if "corporate-ca.pem" in block.code:
        trustme = need("trustme", "the TLS page's private CA")
        trustme.CA().cert_pem.write_to_path(str(stage.folder / "corporate-ca.pem"))
    if _defines_tests(block.code):
        assert len(chain) == 1, f"{block.id}: a pytest recipe stands alone"
        recipe = stage.folder / "test_recipe.py"
        recipe.write_text(block.code, encoding="utf-8")
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(recipe)],
            capture_output=True,
            text=True,
            timeout=80,
            cwd=stage.folder,
            check=False,
        )
        assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
        assert re.search(r"\b\d+ passed\b", child.stdout), child.stdout
        return
    if block.marker != "offline":
        _point_clients_at(stage.server, monkeypatch)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for part in chain:
            exec(compile(part.code, part.id, "exec"), namespace)
    finally:
        for value in namespace.values():  # a page may leave a session open on purpose
            if isinstance(value, SESSIONS):
                value.close()


@pytest.mark.parametrize(
    ("block", "offset", "line"),
    CLI_LINES,
    ids=[f"{b.id}+{offset}" for b, offset, _ in CLI_LINES],
)
@pytest.mark.both_modes
def test_cli_example_runs(
    block: Block, offset: int, line: str, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``dashscope-sync`` line of the docs runs and succeeds against the local server."""
    _skip_unless_runnable(block)
    argv = shlex.split(line, comments=True)
    assert argv[0] == _CLI, f"{block.id}+{offset}: a CLI example block holds only commands"
    _point_clients_at(stage.server, monkeypatch)
    out, err = io.StringIO(), io.StringIO()
    try:
        code = cli_main.main(argv[1:], out=out, err=err)
    except SystemExit as exc:  # --version and --help exit from argparse
        code = int(exc.code or 0)
    assert code == 0, err.getvalue()[-3000:]


def test_blocks_were_found() -> None:
    """The collector finds the docs' blocks (a parser that found none would pass vacuously)."""
    assert len(PYTHON) >= 30
    assert len(CLI_LINES) >= 10
    pages = {b.page.name for b in PYTHON}
    assert {"getting-started.md", "conversations.md", "README.md"} <= pages


def test_every_marker_is_known_and_gives_its_reason() -> None:
    """Each marker is one the runner knows, sits right before a block, and a skip says why."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, text in enumerate(lines, start=1):
            found = _MARKER.match(text.strip())
            if not found or found.group(1) not in (*_MARKERS, "generated"):
                continue
            where = f"{page.relative_to(ROOT)}:{number}"
            kind, reason = found.group(1), found.group(2)
            if kind == "generated":
                continue
            assert number < len(lines) and _FENCE.match(lines[number]), f"{where}: no block"
            if _MARKERS[kind]:
                assert reason and len(reason.split()) >= 3, f"{where}: {kind} without a reason"
    for block in ALL_BLOCKS:
        if block.marker is not None:
            assert block.marker in _MARKERS, f"{block.id}: unknown marker {block.marker!r}"


def test_cli_blocks_hold_only_commands() -> None:
    """A ``sh`` block with a ``dashscope-sync`` line holds nothing else, so all of it runs."""
    for block in CLI_BLOCKS:
        for line in block.code.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                assert line.startswith(_CLI), f"{block.id}: {line!r}"


# The site itself -----------------------------------------------------------------------


def _hook(name: str = "cli_reference") -> Any:
    """A MkDocs hook of docs/hooks/, imported as the build imports it."""
    spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_the_parsers() -> None:
    """The command-line page gets every command's --help from the parsers at build time."""
    hook = _hook()
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert page.count(hook.MARKER) == 1
    built = hook.on_page_markdown(page, page=None)
    assert hook.MARKER not in built
    commands = hook.commands()
    assert set(commands) == {"demo", "talk", "serve", "token", "translate", "speak", "transcribe"}
    for name, parser in commands.items():
        assert f"## dashscope-sync {name}\n" in built, name
        for action in parser._actions:  # every option of every command is on the page
            for flag in action.option_strings:
                assert re.search(rf"{re.escape(flag)}\b", built), (name, flag)


def test_performance_plots_are_drawn_from_the_results() -> None:
    """Each plot marker of the performance page becomes an SVG image with a bar per contender and column of the current benchmarks/RESULTS.md."""
    plots = _hook("benchmark_plots")
    page = (DOCS / "performance.md").read_text(encoding="utf-8")
    markers = list(plots.MARKER.finditer(page))
    assert len(markers) >= 4
    built = plots.render(page)
    assert not plots.MARKER.search(built)
    images = re.findall(r"\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", built)
    assert len(images) == len(markers)
    for marker, image in zip(markers, images, strict=True):
        svg = ElementTree.fromstring(base64.b64decode(image))
        _, rows = plots.table(marker.group("table").strip())
        columns = marker.group("columns").split(",")
        bars = [e for e in svg if e.tag.endswith("rect")]
        assert len(bars) == len(columns) * (len(rows) + 1)  # + the legend's swatches
        labels = {e.text for e in svg if e.tag.endswith("text")}
        assert {row[0] for row in rows} <= labels


def test_every_page_is_in_the_nav_and_every_link_resolves() -> None:
    """mkdocs.yml lists every page once, and every relative link of the docs and the README points at a file that exists."""
    nav = re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


def test_site_builds_strictly(tmp_path: Path) -> None:
    """mkdocs build --strict passes: no broken link, no missing reference, no warning."""
    if sys.version_info < (3, 11):
        pytest.skip(
            "the documentation toolchain (mkdocs-material 9.8, mkdocstrings 1.0.7) needs "
            "Python 3.11; CI builds the site on its default Python"
        )
    need("mkdocs", "the documentation site's builder")
    need("material", "the documentation site's theme")
    child = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    assert (tmp_path / "cli" / "index.html").read_text(encoding="utf-8").count("usage:") >= 8
