"""Run every benchmark in this folder (``make bench``), one after the other, and stop on failure.

Each ``bench_*.py`` script compares aisle with named peers in the same run and writes a JSON and
a Markdown file under ``benchmarks/results/``. Pass script names to run only some of them:
``python benchmarks/run_all.py bench_simulator``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not wanted or p.stem in wanted)
    if not scripts:
        print(f"no benchmark matches {sorted(wanted)}; available: {[p.stem for p in HERE.glob('bench_*.py')]}")
        return 2
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], check=False)
        print(f"=== {script.name}: exit {done.returncode} in {time.perf_counter() - start:.0f} s ===", flush=True)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
