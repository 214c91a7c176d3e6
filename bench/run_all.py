"""Run every benchmark in turn and print its output: ``python -m bench.run_all [--smoke]``.

Each benchmark runs as its own process (so one's memory and pools never touch another's numbers); the
lines starting with ``RATIO`` are collected into a summary table at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.common import ROOT, machine

BENCHMARKS = ("client_overhead", "scale", "emulator_capacity", "streaming", "lifecycle_cost", "store_cost",
              "redis_topologies")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks; print their output and the RATIO summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="each benchmark in its few-second smoke size")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="which (default: all)")
    args = parser.parse_args(argv)
    ratios: list[str] = []
    for name in args.names or BENCHMARKS:
        command = [sys.executable, "-m", f"bench.{name}", *(["--smoke"] if args.smoke else [])]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        print(result.stdout, end="")
        if result.returncode:
            print(result.stderr, file=sys.stderr)
            raise SystemExit(f"bench.{name} failed with exit code {result.returncode}")
        ratios += [line for line in result.stdout.splitlines() if line.startswith("RATIO")]
        print()
    print(f"# Summary ({machine()})")
    for line in ratios:
        print(line)


if __name__ == "__main__":
    main()
