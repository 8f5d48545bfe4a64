"""MkDocs hook: the command-line page's reference, written from the argparse parsers.

``docs/cli.md`` holds the marker below; at build time it is replaced by each
command's ``--help`` as the installed package prints it, so the page cannot drift
from the parsers. tests/test_docs_site.py checks the generated text too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- generated: command-line reference -->"

#: The help text's width: wide enough for the option columns, stable across terminals.
WIDTH = "88"


@contextlib.contextmanager
def _fixed_width() -> Iterator[None]:
    # argparse reads the width from COLUMNS each time a help text is formatted.
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name, in the order ``--help`` lists them."""
    from dashscope_sync._cli.main import _parser

    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices.items())


def render() -> str:
    """The reference as Markdown: the top-level help, then one section per command."""
    from dashscope_sync._cli.main import _parser

    with _fixed_width():
        parts = [
            "## dashscope-sync\n",
            f"```text\n{_parser().format_help().rstrip()}\n```\n",
        ]
        for name, parser in commands().items():
            parts.append(f"## dashscope-sync {name}\n")
            parts.append(f"```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker on the command-line page with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
