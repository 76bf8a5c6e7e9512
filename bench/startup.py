"""CLI start-up: how long `evidock` takes before it does anything.

    python -m bench.startup [--runs 9] [--compare DIR] [--no-doc]

Times `evidock --help`, `evidock whoami --help`, `evidock verify --help` and
`evidock admin migrate --check` on an initialised home (a command that opens the
catalog) as child processes, each against the bare interpreter (`python -c pass`)
measured in the same run. With ``--compare DIR`` (another checkout, e.g. a `git
worktree` of an older commit) the same commands run from that tree too, alternating
with this one, so both see the same load. Writes the "CLI start-up" section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO, machine_info, markdown_table, median, run_child, write_section

COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("evidock --help", ("--help",)),
    ("evidock whoami --help", ("whoami", "--help")),
    ("evidock verify --help", ("verify", "--help")),
    ("evidock admin migrate --check (opens the catalog)", ("admin", "migrate", "--check")),
)


def _env(tree: Path, home: Path) -> dict[str, str]:
    # -P semantics by hand: the tree under test first, nothing from the working directory.
    return {**os.environ, "PYTHONPATH": str(tree), "EVIDOCK_HOME": str(home),
            "PYTHONSAFEPATH": "1"}


def _time(tree: Path, home: Path, args: Sequence[str]) -> float:
    argv = [sys.executable, "-m", "evidock", *args]
    return run_child(argv, env=_env(tree, home), check=False).wall_s


def _init(tree: Path, home: Path) -> bool:
    """Initialise a home; False when this tree has no `admin migrate` (older trees)."""
    env = _env(tree, home)
    run = [sys.executable, "-m", "evidock"]
    # As root, init hands the home to a service account: this one (older trees: none).
    made = subprocess.run([*run, "init", "--account", "root"], env=env, capture_output=True,
                          text=True, timeout=120)
    if made.returncode != 0 and "--account" in made.stderr:  # a tree without the option
        made = subprocess.run([*run, "init"], env=env, capture_output=True, text=True,
                              timeout=120)
    if made.returncode != 0:
        raise SystemExit(f"evidock init failed in {tree}: {made.stderr.strip()}")
    check = subprocess.run([*run, "admin", "migrate", "--check"], env=env,
                           capture_output=True, timeout=120)
    return check.returncode == 0


def measure(trees: dict[str, Path], runs: int) -> list[list[object]]:
    homes = {name: Path(tempfile.mkdtemp(prefix=f"evidock-startup-{name}-")) for name in trees}
    ready = {name: _init(tree, homes[name]) for name, tree in trees.items()}
    bare = [run_child([sys.executable, "-c", "pass"]).wall_s for _ in range(runs)]
    base = median(bare)
    rows: list[list[object]] = [["`python -c pass` (baseline)", "", f"{base:.3f}", "1.00×"]]
    for label, args in COMMANDS:
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(runs):
            for name, tree in trees.items():  # alternate, so both see the same load
                if args[0] == "admin" and not ready[name]:
                    continue
                times[name].append(_time(tree, homes[name], args))
        for name, values in times.items():
            if values:
                m = median(values)
                rows.append([label, name, f"{m:.3f}", f"{m / base:.2f}×"])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--compare", type=Path, help="another checkout to time alongside")
    ap.add_argument("--no-doc", action="store_true", help="print only; do not write docs")
    args = ap.parse_args(argv)
    trees = {"this tree": REPO}
    if args.compare:
        trees["compared"] = args.compare.resolve()
    rows = measure(trees, args.runs)
    table = markdown_table(["command", "tree", "median s", "÷ bare python"], rows)
    info = machine_info()
    compare = " --compare DIR" if args.compare else ""
    body = (f"`python -m bench.startup --runs {args.runs}{compare}` — {info['date']}, "
            f"{info['machine']}, Python {info['python']}, {info['load']}. Each figure is "
            "the median wall time of a child process, runs alternating between trees."
            f"\n\n{table}\n")
    print(body)
    if not args.no_doc:
        write_section("CLI start-up", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
