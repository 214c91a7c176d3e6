"""Instructions per turn, counted by valgrind: the noise-free companion of ``bench.client_overhead``.

``python -m bench.instructions [--modes bare,wire,memory,sqlite] [--in-flight 1] [--turns 100 500]
[--against PATH]`` runs each mode of ``bench.client_overhead`` (bare aiohttp, ``client.send_message``,
``Conversation.send`` with the memory and the SQLite store) in its own process under
``valgrind --tool=callgrind``, once with each of the two turn counts. The difference between the two runs,
divided by the extra turns, is the client's instructions per turn with start-up, imports and session
starts taken out. The ratio to bare aiohttp of the same tree is printed as a ``RATIO`` line.

Why: the timed benchmark's ratios move by ±0.3x between runs on a shared 2-core machine, which hides a
change of a few percent, and CPU performance counters are not available in this VM. Instruction counts
stay within about 1% from run to run. They do not see cache misses, so they do not replace the timed
figures; they tell whether one tree runs more code per turn than another.

``--against PATH``: another checkout of this repository (a worktree of an older commit, say). Its modes
run from its own ``src/`` and ``bench/``, with this tree's emulator and Python, so both trees are measured
the same way in the same run. Needs ``valgrind`` on the PATH (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import ROOT, header, server_process

MODES = ("bare", "wire", "memory", "sqlite")

# The child: one mode of the tree's own bench.client_overhead (an older tree may not have this file).
_CHILD = """
import asyncio, sys
from bench.client_overhead import Result, run_bare, run_client, run_conversations
url, mode, in_flight, turns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
result = Result()
if mode == "bare":
    asyncio.run(run_bare(url, in_flight, turns, result))
elif mode == "wire":
    asyncio.run(run_client(url, in_flight, turns, result))
else:
    asyncio.run(run_conversations(url, in_flight, turns, result, mode))
"""

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def count(tree: Path, url: str, mode: str, in_flight: int, turns: int) -> int:
    """Instructions the client process ran for ``turns`` turns per lane of ``mode`` (start-up included)."""
    # A fixed hash seed: dict and set layouts, and so the instructions, are the same from run to run.
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}", "PYTHONHASHSEED": "0"}
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", _CHILD,
               url, mode, str(in_flight), str(turns)]
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"{mode} in {tree} failed under valgrind (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_turn(
    tree: Path, url: str, modes: list[str], in_flight: int, turns: tuple[int, int], jobs_at_once: int
) -> dict[str, float]:
    """Instructions per turn of each mode: the difference of two runs over the extra turns."""
    jobs = [(mode, n) for mode in modes for n in turns]
    # Counts do not depend on what else runs, so the runs may share the cores.
    with ThreadPoolExecutor(max_workers=jobs_at_once) as pool:
        counted = dict(zip(jobs, pool.map(lambda job: count(tree, url, job[0], in_flight, job[1]), jobs),
                           strict=True))
    extra = (turns[1] - turns[0]) * in_flight
    return {mode: (counted[(mode, turns[1])] - counted[(mode, turns[0])]) / extra for mode in modes}


def report(label: str, counts: dict[str, float]) -> None:
    """One table: instructions per turn and the ratio to bare aiohttp."""
    base = counts["bare"]
    print(f"\n## {label}")
    print(f"{'mode':<10} {'instructions/turn':>18} {'ratio':>7}")
    for mode, value in counts.items():
        print(f"{mode:<10} {value:>18,.0f} {value / base:>6.3f}x")
    for mode, value in counts.items():
        if mode != "bare":
            print(f"RATIO instructions {label} | {mode} vs bare: {value / base:.3f}x")


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, start the emulator, count every mode of this tree (and ``--against``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few runs: bare and memory, few turns")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--in-flight", type=int, default=1, help="conversations in flight at once")
    parser.add_argument("--turns", type=int, nargs=2, default=(100, 500), metavar=("FEWER", "MORE"),
                        help="turns per lane of the two runs whose difference is counted")
    parser.add_argument("--against", type=Path, help="another checkout of this repository to count the same way")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="valgrind runs at once (default: one per core)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.modes, args.turns, args.in_flight = "bare,memory", (5, 15), 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}: use some of {', '.join(MODES)}")
    if "bare" not in modes:
        modes.insert(0, "bare")  # every ratio is to bare aiohttp of the same tree
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: run at least one at a time")
    if not args.turns[0] < args.turns[1]:
        parser.error("--turns FEWER MORE: FEWER must be smaller than MORE")
    if args.against is not None and not (args.against / "bench" / "client_overhead.py").is_file():
        parser.error(f"--against {args.against}: not a checkout of this repository (no bench/client_overhead.py)")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on the PATH: install it (Debian: apt-get install valgrind), then run again.")
    header("Client instructions per turn (valgrind callgrind)")
    print(f"turns per lane: {args.turns[0]} and {args.turns[1]}; in flight: {args.in_flight}; "
          f"emulator: separate process, not counted")
    with server_process("emulator") as server:
        trees = [("this tree", ROOT)] + ([(f"against {args.against}", args.against)] if args.against else [])
        for label, tree in trees:
            report(label, per_turn(tree.resolve(), server.url, modes, args.in_flight, tuple(args.turns), args.jobs))


if __name__ == "__main__":
    main()
