#!/usr/bin/env bash
# Everything CI checks: layering, types of every shipped package, lint, and the test suite
# (real ffmpeg, real SQLite, real subprocesses). Pass extra args through to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== import layering (import-linter)"
lint-imports --no-cache
echo "== mypy (strict, pydantic plugin: the shipped packages, see [tool.mypy])"
mypy
echo "== ruff"
ruff check .
echo "== pytest"
rc=0
# One worker per core (at most 4): the tests wait on subprocesses, disks and servers
# much of the time, so 2 workers on 2 cores take ~0.6 of one worker's time. Each worker
# starts its own session servers (PostgreSQL, SeaweedFS, Ceph) on free ports.
# --dist loadfile: a worker takes each module whole, so its module set-up (stations,
# centers) is built once; tests/worker_plan.py puts the longest modules first and keeps
# modules that share a session world on one worker (xdist's own reorder, by test count,
# is off: it would put the few-test, longest modules last).
python -m pytest -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit "$rc"
