"""``import dashscope_sync`` as a user meets it: a new interpreter, cold and warm file cache.

Warm: the files were read moments ago (what bench.py's "cold import" measures:
a new interpreter, but the OS file cache warm). Cold: the OS page cache is
dropped before each run (``echo 3 > /proc/sys/vm/drop_caches``, Linux, root
only), so Python, the standard library and the package are read from storage
again, as on the first run after a reboot. Both keep the bytecode cache
(``__pycache__``), as an installed package has it.

Each run reports the import statement alone (timed inside the interpreter)
and the whole process (``python -c "import dashscope_sync"``, start-up
included), next to a bare ``python -c pass``.

Usage: python benchmarks/import_cold.py [--runs 7] [--warm-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TIMED_IMPORT = (
    "import time; t = time.perf_counter(); import dashscope_sync; print(time.perf_counter() - t)"
)


def drop_caches() -> bool:
    """Drop the OS page cache; False if this process may not (not root, not Linux)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as file:
            file.write("3\n")
    except OSError:
        return False
    return True


def run(code: str) -> tuple[float, float]:
    """(seconds the process took, what it printed as a float or 0)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - started, float(proc.stdout or 0)


def measure(runs: int, cold: bool) -> dict[str, float]:
    bare, process, statement = [], [], []
    for _ in range(runs):
        if cold:
            drop_caches()
        bare.append(run("pass")[0])
        if cold:
            drop_caches()
        wall, inside = run(TIMED_IMPORT)
        process.append(wall)
        statement.append(inside)
    return {
        "python -c pass": statistics.median(bare),
        "import statement": statistics.median(statement),
        "whole process": statistics.median(process),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--warm-only", action="store_true", help="leave the page cache alone (the CI smoke run)"
    )
    args = parser.parse_args()
    run(TIMED_IMPORT)  # writes bytecode if missing, warms the cache
    warm = measure(args.runs, cold=False)
    can_drop = not args.warm_only and drop_caches()
    cold = measure(args.runs, cold=True) if can_drop else None
    print(f"medians of {args.runs} runs, ms (Python {sys.version.split()[0]})")
    print(f"{'':18} {'warm':>8} {'cold':>8}")
    for key, value in warm.items():
        cold_text = f"{cold[key] * 1000:8.1f}" if cold else "     n/a"
        print(f"{key:18} {value * 1000:8.1f} {cold_text}")
    if args.warm_only:
        print("cold: not measured (--warm-only)")
    elif not can_drop:
        print("cold: not measured (dropping the page cache needs root on Linux)")


if __name__ == "__main__":
    main()
