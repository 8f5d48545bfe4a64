"""What a user gets from the package: the sdist's files, its metadata, the optional extra."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)

# Runs a snippet with the websockets package hidden, as in an install without
# the 'testing' extra.
HIDE_WEBSOCKETS = """
import sys

class HideWebsockets:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "websockets":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideWebsockets())
"""


def run_without_websockets(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_WEBSOCKETS + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_testing_without_websockets_says_what_to_install() -> None:
    """import dashscope_sync.testing without websockets names the extra to install."""
    proc = run_without_websockets(
        "try:\n"
        "    import dashscope_sync.testing\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc.name, exc, sep='|')\n"
    )
    assert proc.returncode == 0, proc.stderr
    kind, name, message = proc.stdout.strip().split("|")
    assert kind == "ImportError" and name.startswith("websockets")
    assert "pip install 'dashscope-sync[testing]'" in message


def test_core_imports_without_websockets() -> None:
    """The package itself needs no websockets: only the testing module does."""
    proc = run_without_websockets("import dashscope_sync; print(dashscope_sync.__version__)")
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    """An sdist built by setuptools' PEP 517 hook from a copy of the source tree."""
    src = tmp_path_factory.mktemp("src") / "project"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".*_cache"
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = out.glob("*.tar.gz")
    return tarfile.open(archive)


def test_sdist_has_readme_license_and_changelog(sdist: tarfile.TarFile) -> None:
    """The sdist ships README.md, LICENSE and CHANGELOG.md at its top level."""
    names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"README.md", "LICENSE", "CHANGELOG.md"} <= names


def test_sdist_metadata(sdist: tarfile.TarFile) -> None:
    """PKG-INFO names the author, the MIT licence and project URLs."""
    (pkg_info,) = [
        m for m in sdist.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
    ]
    file = sdist.extractfile(pkg_info)
    assert file is not None
    text = file.read().decode()
    assert "\nAuthor: " in text and "\nAuthor-email: " in text
    assert "\nLicense: MIT" in text
    assert "\nProject-URL: " in text


def test_license_file_matches_declared_licence() -> None:
    """LICENSE is the MIT licence that setup.cfg and its classifier declare."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["license"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in config["metadata"]["classifiers"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def supported_pythons() -> list[tuple[int, int]]:
    """The (3, X) versions setup.cfg's classifiers list, in order."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    prefix = "Programming Language :: Python :: 3."
    return sorted(
        (3, int(line.removeprefix(prefix)))
        for line in config["metadata"]["classifiers"].splitlines()
        if line.startswith(prefix) and line.removeprefix(prefix).isdigit()
    )


def test_ci_runs_every_python_the_metadata_lists() -> None:
    """.ci/supported-pythons, which picks the Pythons .ci/every-python runs the suite
    on, gives exactly setup.cfg's classifiers, oldest (and newest) included; .ci/run
    runs them after the README's command, which runs alone."""
    versions = supported_pythons()
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci" / "supported-pythons")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"{major}.{minor}" for major, minor in versions]
    every_python = (ROOT / ".ci" / "every-python").read_text()
    assert "versions=$(bash .ci/supported-pythons)" in every_python.splitlines()
    run = (ROOT / ".ci" / "run").read_text().splitlines()
    readme = run.index(
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )
    assert run.index("bash .ci/every-python || every_status=$?") > readme  # after it, not beside


def test_metadata_lists_one_range_of_pythons_from_python_requires() -> None:
    """The classifiers name every minor version from python_requires' on, with no gap,
    and the type checker and linter target that oldest version."""
    versions = supported_pythons()
    oldest = versions[0]
    assert versions == [(3, minor) for minor in range(oldest[1], versions[-1][1] + 1)]
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options"]["python_requires"] == f">={oldest[0]}.{oldest[1]}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'python_version = "{oldest[0]}.{oldest[1]}"' in pyproject
    assert f'target-version = "py{oldest[0]}{oldest[1]}"' in pyproject


@pytest.mark.parametrize("pyenv", ["absent", "without the version"])
def test_every_python_skips_a_python_it_cannot_find(tmp_path: Path, pyenv: str) -> None:
    """.ci/every-python prints a line for a supported Python found neither through pyenv
    nor on PATH and goes on: a machine without it (or without pyenv) does not fail CI."""
    shutil.copytree(ROOT / ".ci", tmp_path / ".ci")
    (tmp_path / "setup.cfg").write_text(
        "[metadata]\nclassifiers =\n"
        "    Programming Language :: Python :: 3.98\n"
        "    Programming Language :: Python :: 3.99\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    if pyenv == "without the version":
        fake = bin_dir / "pyenv"
        fake.write_text("#!/bin/sh\necho \"pyenv: version '$2' not installed\" >&2\nexit 1\n")
        fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "every-python")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for version in ("3.98", "3.99"):
        assert f"every-python: SKIPPED Python {version}: not found" in "\n".join(lines)
    assert lines[-1] == "every-python: passed on Python (none)"
    assert not list(tmp_path.glob(".venv-*"))
