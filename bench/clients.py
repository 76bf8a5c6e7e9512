"""Client commands against a running station: what a user waits for at the terminal.

    python -m bench.clients [--runs 9] [--no-doc]

Starts one fresh `evidock serve` (a fresh EVIDOCK_HOME, as bench/camera.py does) and
times, as child processes of the installed `evidock` entry point, commands that talk to
it: `whoami`, `case list` and `ingest` of an empty camera (a directory with no
files: the offload's fixed cost, from the client's start to its JSON answer, the
session opened, audited and closed by the service). `evidock --help` and the bare
interpreter (`python -c pass`) are measured in the same run as baselines. Runs of the
commands alternate, so each sees the same load.

Targets (issue 14, start-up): `--help` and any client command ≤ 0.3 s; an offload of
an empty camera ≤ 0.5 s. Writes the "Client commands" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.camera import EVIDOCK, _env, station
from bench.common import machine_info, markdown_table, median, run_child, write_section

#: (label, argv after `evidock`, target s); EMPTY is replaced by the empty camera.
EMPTY = "{empty}"
COMMANDS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("evidock --help", ("--help",), 0.3),
    ("evidock whoami", ("whoami",), 0.3),
    ("evidock case list", ("case", "list"), 0.3),
    ("evidock ingest EMPTY --device ZFY0001 --no-process (an empty camera)",
     ("ingest", EMPTY, "--device", "ZFY0001", "--json", "--no-process"), 0.5),
)


def _argv(args: Sequence[str], empty: Path) -> list[str]:
    return [str(EVIDOCK), *(str(empty) if a == EMPTY else a for a in args)]


def _check(args: Sequence[str], empty: Path, env: dict[str, str]) -> None:
    """Each command must succeed (a refused or failing one would time its error)."""
    done = subprocess.run(_argv(args, empty), env=env, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}: "
                         f"{done.stderr.decode(errors='replace')[-400:]}")
    if "ingest" in args and json.loads(done.stdout)["summary"]["outcome"] != "completed":
        raise SystemExit(f"the empty offload did not complete: {done.stdout[:400]!r}")


def measure(runs: int, scratch: Path) -> list[list[object]]:
    empty = scratch / "empty-camera"
    empty.mkdir()
    home = scratch / "home"
    with station(home, None):
        env = _env(home)
        for _label, args, _target in COMMANDS:
            _check(args, empty, env)
        bare: list[float] = []
        times: dict[str, list[float]] = {label: [] for label, _a, _t in COMMANDS}
        for _ in range(runs):  # alternate: every command sees the same load
            bare.append(run_child([sys.executable, "-c", "pass"]).wall_s)
            for label, args, _target in COMMANDS:
                times[label].append(run_child(_argv(args, empty), env=env).wall_s)
    base = median(bare)
    rows: list[list[object]] = [["`python -c pass` (baseline)", f"{base:.3f}", "1.00×",
                                 "", ""]]
    for label, _args, target in COMMANDS:
        m = median(times[label])
        rows.append([label, f"{m:.3f}", f"{m / base:.2f}×", f"≤ {target}",
                     "met" if m <= target else "**missed**"])
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--no-doc", action="store_true", help="print only; do not write docs")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="evidock-clients-") as tmp:
        rows = measure(args.runs, Path(tmp))
    table = markdown_table(["command", "median s", "÷ bare python", "target s", ""], rows)
    info = machine_info()
    body = (f"`python -m bench.clients --runs {args.runs}` — {info['date']}, "
            f"{info['machine']}, Python {info['python']}, {info['load']}. One fresh "
            "`evidock serve` (fresh EVIDOCK_HOME, `init --account root`); each figure is "
            "the median wall time of the installed `evidock` entry point as a child "
            "process, from its start to its exit, commands alternating.\n\n"
            f"{table}\n")
    print(body)
    if not args.no_doc:
        write_section("Client commands", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
