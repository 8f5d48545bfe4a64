"""The suite's own rules: where the [test] extra must be complete, a missing package fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REQUIRE_EXTRA_ENV

ROOT = Path(__file__).resolve().parent.parent

USES_EXTRA = """
from tests.conftest import need


def test_uses_the_extra() -> None:
    need("dashscope_sync_no_such_package")
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("env", "outcome"),
    [({}, "1 skipped"), ({"CI": "true"}, "1 failed"), ({REQUIRE_EXTRA_ENV: "1"}, "1 failed")],
    ids=["local", "CI=true", f"{REQUIRE_EXTRA_ENV}=1"],
)
def test_a_missing_extra_package_skips_only_where_allowed(
    tmp_path: Path, env: dict[str, str], outcome: str
) -> None:
    """need() skips a test whose [test] extra package is missing, but fails it in CI."""
    (tmp_path / "test_uses_extra.py").write_text(USES_EXTRA)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", REQUIRE_EXTRA_ENV)}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_uses_extra.py"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert outcome in proc.stdout, proc.stdout + proc.stderr
    if outcome == "1 failed":
        assert proc.returncode == 1
        assert "the [test] extra must be complete" in proc.stdout
    else:
        assert proc.returncode == 0


def test_no_test_imports_an_extra_package_with_importorskip() -> None:
    """Test files import the [test] extra's packages through need(), never importorskip,
    which would turn a broken install into silent skips in CI."""
    call = "pytest." + "importorskip("  # split, so this file does not name it
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "conftest.py" and call in path.read_text("utf-8")
    ]
    assert offenders == []
