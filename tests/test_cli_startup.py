"""Ctrl-C while the command is still importing the package: one line and exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dashscope_sync._cli import main as _cli

from ._proc import INTERRUPTIBLE

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child is POSIX"),
]

#: Holds the import of the package's first real module until Ctrl-C comes,
#: so the signal lands mid-import every time, not by luck of timing.
SITECUSTOMIZE = """
import sys, time

class HoldImport:
    def find_spec(self, name, path=None, target=None):
        if name == "dashscope_sync._audio.files":
            sys.stderr.write("importing\\n")
            sys.stderr.flush()
            time.sleep(30)
        return None

sys.meta_path.insert(0, HoldImport())
"""


@pytest.mark.parametrize("how", ["python -m", "console script"])
def test_ctrl_c_while_importing_is_one_line(tmp_path: Path, how: str) -> None:
    """Ctrl-C during the package's import prints one line and exits 130, with no traceback."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    script = Path(sys.executable).parent / "dashscope-sync"
    command = [sys.executable, "-m", "dashscope_sync"] if how == "python -m" else [str(script)]
    with subprocess.Popen(
        [*command, "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **INTERRUPTIBLE,
    ) as proc:
        assert proc.stderr is not None
        try:
            assert proc.stderr.readline() == "importing\n"
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
            rest = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == _cli.EXIT_INTERRUPTED, rest
    assert rest == "dashscope-sync: error: interrupted\n"


def test_other_programs_keep_their_ctrl_c(tmp_path: Path) -> None:
    """A program that imports the package still gets KeyboardInterrupt from Ctrl-C."""
    proc = subprocess.run(
        [sys.executable, "-c", "import signal, dashscope_sync; "
         "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"],
        capture_output=True, text=True, timeout=60, check=False, **INTERRUPTIBLE,
    )  # fmt: skip
    assert proc.stdout.strip() == "True", proc.stderr
