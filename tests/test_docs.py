"""The docs (README and docs/) document what users otherwise find only with dir(), and say it truly."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import dashscope_sync as ds
from dashscope_sync import _errors
from dashscope_sync.testing import LocalRealtimeServer

# Both modes (issue 18) for the tests marked both_modes one by one: those that
# open sessions; the others open none.

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
#: The README and every page of the documentation site, as one text.
ALL_DOCS = "\n".join([README, *(p.read_text() for p in sorted(DOCS.rglob("*.md")))])


def page(name: str) -> str:
    """A page of the documentation site, by its path under docs/."""
    return (DOCS / name).read_text()


def section(title: str, text: str = README) -> str:
    """The text from a heading to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    assert match, title
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def drawn_tree(text: str) -> list[tuple[int, str, str | None]]:
    """(column, class, builtin) for each class drawn in a ├──/└── tree."""
    drawn: list[tuple[int, str, str | None]] = []
    for line in text.splitlines():
        if line.strip().startswith("DashScopeError"):
            drawn.append((-1, "DashScopeError", None))
            continue
        match = re.search(r"[├└]── (\w+)(?: \((\w+)\))?", line)
        if match:
            drawn.append((match.start(), match.group(1), match.group(2)))
    return drawn


ERRORS_PAGE = page("guides/errors-and-timeouts.md")


class TestErrorTree:
    def test_docs_draw_the_whole_tree(self) -> None:
        """The errors page's tree draws every exception class, under its true parent."""
        block = section("Errors", ERRORS_PAGE).split("```")[1]
        drawn = drawn_tree(block)
        assert sorted(name for _, name, _ in drawn) == sorted(_errors.__all__)
        for index, (column, name, builtin) in enumerate(drawn):
            cls = getattr(ds, name)
            parents = [n for c, n, _ in drawn[:index] if c < column]
            if parents:
                assert cls.__bases__[0] is getattr(ds, parents[-1]), name
            if builtin:
                assert builtin in [base.__name__ for base in cls.__mro__], name

    def test_docs_tree_matches_the_module_docstring(self) -> None:
        """The errors page and the _errors docstring draw the same tree."""
        readme = [(n, b) for _, n, b in drawn_tree(section("Errors", ERRORS_PAGE).split("```")[1])]
        module = [(n, b) for _, n, b in drawn_tree(_errors.__doc__ or "")]
        assert readme == module


@pytest.mark.parametrize(
    "usage",
    [
        "ds.sample_wav_path()",
        "ds.pcm16_to_wav(",
        "ds.load_wav(",
        "ds.ErrorEvent",
        "event.error.code",
        "ds.pcm16_buffer(",
        "ds.image_buffer(",
        "ds.ConfigTypeError",
        "ds.Modality",
    ],
)
def test_docs_show_public_helpers(usage: str) -> None:
    """Public helpers users had to find with dir() are shown in the docs."""
    assert usage in ALL_DOCS


def test_docs_say_iterators_raise_after_cancel() -> None:
    """The conversations guide says iter_text()/iter_audio() raise ResponseCancelledError at the end after a cancel."""
    text = " ".join(section("Responses you can hold", page("guides/conversations.md")).split())
    assert re.search(
        r"`iter_text\(\)` and `iter_audio\(\)`[^.]*raise `ResponseCancelledError`", text
    )


@pytest.mark.both_modes
def test_iterators_do_raise_after_cancel() -> None:
    """What the docs say: after a cancel, iter_text() yields what came, then raises."""
    with LocalRealtimeServer(delta_delay=0.05) as slow:  # paced: still running when cancelled
        client = ds.Client(slow.api_key, base_url=slow.url)
        with client.realtime.connect(model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME) as session:
            session.update_session(ds.SessionUpdate(turn_detection=None))
            handle = session.create_response()
            chunks = handle.iter_text(timeout=10)
            first = next(chunks)
            assert handle.cancel() is True
            with pytest.raises(ds.ResponseCancelledError) as info:
                for _ in chunks:
                    pass
            assert info.value.result is not None
            assert info.value.result.text.startswith(first)


class TestLocalServerKnobs:
    """The local-server page's signatures are the real ones."""

    @staticmethod
    def code_blocks() -> list[str]:
        return page("guides/local-server.md").split("```python\n")[1:]

    def test_constructor(self) -> None:
        """Every constructor argument is shown with its true default."""
        block = next(b for b in self.code_blocks() if b.startswith("LocalRealtimeServer("))
        call = ast.parse(block.split("```")[0]).body[0]
        assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
        shown = {
            kw.arg: eval(compile(ast.Expression(kw.value), "README", "eval"), {"time": time})
            for kw in call.value.keywords
        }
        params = inspect.signature(LocalRealtimeServer).parameters
        assert shown == {name: p.default for name, p in params.items()}
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())

    def test_methods_and_properties(self) -> None:
        """Every public method is shown with its true parameters and defaults; every property too."""
        text = "\n".join(b.split("```")[0] for b in self.code_blocks())
        for name, member in inspect.getmembers(LocalRealtimeServer):
            if name.startswith("_"):
                continue
            if isinstance(member, property):
                assert re.search(rf"server\.{name}\b(?!\()", text), name
                continue
            match = re.search(rf"server\.{name}\(([^)]*)\)", text)
            assert match, name
            shown = ast.parse(f"def f(self, {match.group(1)}): pass").body[0]
            assert isinstance(shown, ast.FunctionDef)
            assert signature_of(shown) == signature_of_method(member), name


def signature_of(func: ast.FunctionDef) -> list[tuple[str, str, Any]]:
    args = func.args
    out: list[tuple[str, str, Any]] = []
    positional = args.args[1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        out.append((arg.arg, "positional", _literal(default)))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append((arg.arg, "keyword", _literal(default)))
    return out


def _literal(node: ast.expr | None) -> Any:
    return inspect.Parameter.empty if node is None else ast.literal_eval(node)


def signature_of_method(method: Any) -> list[tuple[str, str, Any]]:
    params = list(inspect.signature(method).parameters.values())[1:]
    return [
        (p.name, "keyword" if p.kind is p.KEYWORD_ONLY else "positional", p.default) for p in params
    ]


def test_server_vad_default_is_stated_truly() -> None:
    """The LocalRealtimeServer docstring states server VAD's true default (on)."""
    default = inspect.signature(LocalRealtimeServer).parameters["server_vad"].default
    assert default is True
    doc = " ".join((LocalRealtimeServer.__doc__ or "").split())
    assert "It is on by default (``server_vad=True``)" in doc
    assert "off unless" not in doc
    assert "Server VAD is on by default (`server_vad=True`)" in page("guides/local-server.md")


@pytest.mark.parametrize(
    "name", ["ConfigTypeError", "Modality", "TokenDetails", "Usage", "image_buffer", "pcm16_buffer"]
)
def test_changelog_lists_new_names(name: str) -> None:
    """Every public name added for the first hour is in the CHANGELOG's Unreleased section."""
    changelog = (Path(__file__).resolve().parent.parent / "CHANGELOG.md").read_text()
    unreleased = changelog.split("## [Unreleased]", 1)[1].split("\n## ", 1)[0]
    assert f"`{name}" in unreleased


_DROP_UNCLOSED = """
import gc, sys, warnings
import dashscope_sync as ds
from dashscope_sync.testing import LocalRealtimeServer
if sys.argv[1] == "shown":
    warnings.simplefilter("default", ResourceWarning)  # what the notebook says to run
with LocalRealtimeServer() as server:
    session = ds.Client(server.api_key, base_url=server.url).realtime.connect(
        model=ds.MODEL_QWEN3_OMNI_FLASH_REALTIME
    )
    del session
    gc.collect()
print("dropped")
"""


def test_notebook_says_resource_warnings_are_hidden() -> None:
    """The notebook's close cell says a dropped session's ResourceWarning is hidden by default, and how to show it, as a child process proves."""
    notebook = json.loads(
        (Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb").read_text()
    )
    text = " ".join(
        "".join(cell["source"])
        for cell in notebook["cells"]
        if "ResourceWarning" in "".join(cell["source"])
    )
    text = " ".join(text.split())
    assert "hidden by default" in text
    assert 'warnings.simplefilter("default", ResourceWarning)' in text
    # A plain interpreter, whatever warning settings this run was started with.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONDEVMODE")}
    stderr: dict[str, str] = {}
    for mode in ("default", "shown"):
        child = subprocess.run(
            [sys.executable, "-c", _DROP_UNCLOSED, mode],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert child.returncode == 0 and child.stdout.strip() == "dropped", child.stderr
        stderr[mode] = child.stderr
    assert "ResourceWarning" not in stderr["default"]
    assert "ResourceWarning: unclosed" in stderr["shown"]
