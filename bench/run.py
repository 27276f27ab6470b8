"""`make bench`: every benchmark in one run, printed as tables and saved to bench/RESULTS.md.

    python bench/run.py [--quick]

--quick uses small sizes and fewer pairs (a smoke run, not a result to keep).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def run(script: str, *args: str) -> str:
    """Run one benchmark script; its stdout is its table (progress goes to stderr)."""
    out = subprocess.run([sys.executable, str(BENCH / script), *args], stdout=subprocess.PIPE, text=True, check=True)
    print(out.stdout, flush=True)
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        tables = [
            run("bench_pipeline.py", "--scale-customers", "600,6000", "--days", "120", "--pairs", "2"),
            run("bench_materialize.py", "--entities", "20000", "--pairs", "2", "--quick"),
            run("bench_training.py", "--pairs", "2"),
            run("bench_serving.py", "--quick"),
            run("bench_drift.py", "--quick"),
            run("bench_drift_alarms.py", "--quick"),
            run("bench_loop.py", "--quick"),
        ]
    else:
        # 6,000 and 60,000 customers over 200 days: about 1 and 10 million usage rows.
        tables = [
            run("bench_pipeline.py", "--scale-customers", "6000,60000", "--days", "200"),
            run("bench_materialize.py", "--entities", "200000", "--pairs", "5"),
            run("bench_training.py", "--pairs", "5"),
            run("bench_serving.py"),
            run("bench_drift.py"),
            run("bench_drift_alarms.py"),
            run("bench_loop.py"),
        ]
        results = BENCH / "RESULTS.md"
        previous = results.read_text() if results.exists() else "# Benchmark results (newest first)\n"
        header, _, rest = previous.partition("\n")
        entry = f"\n## {datetime.now():%Y-%m-%d %H:%M}\n\n" + "\n".join(tables)
        results.write_text(f"{header}\n{entry}{rest}")
        print(f"saved to {results}")


if __name__ == "__main__":
    main()
