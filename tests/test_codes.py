"""One registry of codes (integrity/codes.py): nothing shipped uses a code it lacks.

The source scan reads every shipped file as text (code, docstrings and comments), so a
code typed as a string, a constant name or a mention in a docstring all have to be in the
registry; codes glued together at run time (``f"E_{what}"``) are refused outright. The
class checks import the shipped modules and walk the ``EvidockError`` tree.
"""

from __future__ import annotations

import ast
import fcntl
import importlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.audit.format import encode, encode_fast
from ingest.cutting import CutSegment, read_segment_list
from ingest.media import MediaInfo
from ingest.process import check_coverage
from integrity.codes import Category, Code, markdown_table
from integrity.errors import (
    EvidockError,
    RenditionDiscontinuous,
    RenditionEmpty,
    RenditionFailed,
    RenditionIncomplete,
    SizeMismatch,
)
from integrity.findings import Finding

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("integrity", "config", "archive", "ingest", "records", "retention", "docks",
            "evidock")
# A code: one prefix letter, "_", upper-case words. A trailing "_" (before "*" or "…") is
# a family in prose, e.g. "E_AUDIT_*".
CODE_TOKEN = re.compile(r"(?<![A-Za-z0-9_.])([EFSWRI]_[A-Z0-9_]*[A-Z0-9])(_?)(?![a-z0-9])")
# A code made by formatting or concatenation: the registry cannot vouch for it.
BUILT_CODE = re.compile(r"""(?<![A-Za-z0-9_])[EFSWRI]_[A-Z0-9_]*(\{|["']\s*\+)""")
# Platform constants that look like codes (stat.S_ISREG, fcntl.F_SETFL, os.W_OK, ...).
NOT_CODES = frozenset(n for mod in (os, stat, fcntl, termios, socket) for n in dir(mod))
# Exception classes that are deliberately outside the EvidockError tree.
NOT_EVIDOCK_ERRORS = {
    # Marker wrapping an OSError from the camera so the copy loop can tell a source read
    # failure from a store write failure; raised by ingest/camread.py, caught by the
    # offload, turned into an E_SOURCE_READ outcome or SourceGone, never escapes.
    "ingest.camread.SourceReadError",
    # Why the package verifier did not read something (a link, FIFO, oversized or
    # undecodable file); it carries a finding of any code and is caught inside
    # integrity's verifier, which reports that finding: it never escapes.
    "integrity.safefs.Refused",
    # The web desk's "no live session on this page request": the desk's own exception
    # handler answers it with the login page (next= this path); it is never an error
    # shown or logged, and the API, which has no login page, never raises it.
    "evidock.web.base.NotLoggedIn",
    # The MP4 index reader met tables it does not follow (fragmented, external data,
    # stz2, tables that do not add up): caught inside check_index, which answers "not
    # judged", and the media check counts the packets instead; it never escapes.
    "ingest.mp4index.NotJudged",
}


def shipped_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def unregistered(text: str) -> list[str]:
    """Code-like tokens in ``text`` that the registry lacks (families: no code starts so)."""
    bad = []
    for match in CODE_TOKEN.finditer(text):
        token, family = match.groups()
        if token in NOT_CODES:
            continue
        if family:
            if not any(c.startswith(token + "_") for c in Code) and token not in Code.__members__:
                bad.append(token + "_")
        elif token not in Code.__members__:
            bad.append(token)
    return bad


def built(text: str) -> list[str]:
    return [m.group(0) for m in BUILT_CODE.finditer(text)]


# --------------------------------------------------------------------------- the scanner


def test_the_scanner_catches_unknown_and_built_codes() -> None:
    assert unregistered('raise X("E_NO_SUCH_CODE")\n# see F_NOT_A_FLAG\nI_FIXITY_OK') == [
        "E_NO_SUCH_CODE", "F_NOT_A_FLAG"]
    assert unregistered("E_AUDIT_* and E_NOPE_*; stat.S_ISREG, os.W_OK") == ["E_NOPE_"]
    assert unregistered("Code.E_DIGEST_MISMATCH, E_SCHEMA_OUTDATED, x_E_FOO, E_Foo") == []
    assert built('f"E_{kind.upper()}" + "E_RENDITION_" + kind') == ['E_{', 'E_RENDITION_" +']
    assert built('f"{Code.E_INTERNAL}: {exc!r}"') == []


# --------------------------------------------------------------------------- shipped source


def test_every_code_in_the_shipped_source_is_registered() -> None:
    found = {str(p.relative_to(ROOT)): unregistered(p.read_text(encoding="utf-8"))
             for p in shipped_files()}
    assert {path: codes for path, codes in found.items() if codes} == {}


def test_no_code_is_built_at_run_time() -> None:
    found = {str(p.relative_to(ROOT)): built(p.read_text(encoding="utf-8"))
             for p in shipped_files()}
    assert {path: hits for path, hits in found.items() if hits} == {}


def test_module_constants_named_like_codes_hold_that_code() -> None:
    """``E_FOO = Code.E_FOO`` (or the string): a constant never renames a code."""
    wrong = []
    for path in shipped_files():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name) and \
                    CODE_TOKEN.fullmatch(node.targets[0].id):
                name, value = node.targets[0].id, ast.unparse(node.value)
                if value not in (f"Code.{name}", repr(name), f'"{name}"'):
                    wrong.append(f"{path.relative_to(ROOT)}: {name} = {value}")
    assert wrong == []


# --------------------------------------------------------------------------- docs


def test_docs_codes_md_is_generated_from_the_registry() -> None:
    assert (ROOT / "docs" / "CODES.md").read_text(encoding="utf-8") == markdown_table(), \
        "stale: python -m integrity.codes > docs/CODES.md"


def test_every_code_is_in_docs_codes_md_with_its_meaning() -> None:
    lines = (ROOT / "docs" / "CODES.md").read_text(encoding="utf-8").splitlines()
    assert [f"| `{c}` | {c.category} | {c.meaning} |" for c in Code] == \
        [line for line in lines if line.startswith("| `")]


def test_the_generator_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "integrity.codes"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out == markdown_table()


def test_codes_mentioned_in_the_docs_are_registered() -> None:
    docs = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    found = {p.name: unregistered(p.read_text(encoding="utf-8")) for p in docs}
    assert {name: codes for name, codes in found.items() if codes} == {}


# --------------------------------------------------------------------------- the registry


PREFIXES = {Category.ERROR: "E_", Category.FINDING: "E_", Category.FAILURE: "E_",
            Category.FLAG: "F_", Category.SKIP: "S_", Category.WARNING: "W_",
            Category.OUTCOME: ("I_", "R_")}


@pytest.mark.parametrize("code", list(Code))
def test_each_code_is_its_own_name_with_a_one_line_meaning(code: Code) -> None:
    assert code.value == code.name
    assert code.startswith(PREFIXES[code.category])
    assert code.meaning.strip() == code.meaning and code.meaning and "\n" not in code.meaning
    assert "|" not in code.meaning  # it goes into a Markdown table


def test_every_category_has_a_meaning_and_a_code() -> None:
    assert {c.category for c in Code} == set(Category)
    assert all(c.meaning for c in Category)


# --------------------------------------------------------------------------- exceptions


def shipped_modules() -> list[str]:
    """Every shipped module that defines a class (alembic scripts define none and cannot
    be imported on their own)."""
    names = []
    for path in shipped_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.ClassDef) for node in ast.walk(tree)):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


@pytest.fixture(scope="module")
def evidock_errors() -> list[type[EvidockError]]:
    for name in shipped_modules():
        importlib.import_module(name)
    return [EvidockError, *(c for c in subclasses(EvidockError)
                            if c.__module__.split(".")[0] in PACKAGES)]


def test_every_evidock_error_has_its_own_registered_code(
        evidock_errors: list[type[EvidockError]]) -> None:
    # the walk reached classes defined outside integrity.errors
    assert {"DriverError", "MountError", "DockStopping"} <= {c.__name__ for c in evidock_errors}
    for cls in evidock_errors:
        assert "code" in vars(cls), f"{cls.__qualname__} inherits its code"
        assert isinstance(cls.code, Code), f"{cls.__qualname__}.code is not a Code"
        assert cls.code.category is Category.ERROR, cls.__qualname__


def test_no_two_error_classes_share_a_code(evidock_errors: list[type[EvidockError]]) -> None:
    by_code: dict[str, list[str]] = {}
    for cls in evidock_errors:
        by_code.setdefault(cls.code, []).append(f"{cls.__module__}.{cls.__qualname__}")
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}


def test_every_error_code_is_raised_by_a_class(
        evidock_errors: list[type[EvidockError]]) -> None:
    """An ``error`` code no class carries is mislabelled (it is a finding or a failure)."""
    assert {c for c in Code if c.category is Category.ERROR} == \
        {cls.code for cls in evidock_errors}


def test_every_exception_class_shipped_is_an_evidock_error(
        evidock_errors: list[type[EvidockError]]) -> None:
    outside = []
    for name in shipped_modules():
        module = importlib.import_module(name)
        for node in ast.walk(ast.parse(Path(module.__file__ or "").read_text("utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            cls = getattr(module, node.name, None)
            if not isinstance(cls, type):  # nested in a function: judge by its bases
                bases = {ast.unparse(b) for b in node.bases}
                if bases & {"Exception", "BaseException", "RuntimeError", "ValueError"}:
                    outside.append(f"{name}.{node.name}")
            elif issubclass(cls, BaseException) and not issubclass(cls, EvidockError):
                outside.append(f"{name}.{node.name}")
    assert sorted(outside) == sorted(NOT_EVIDOCK_ERRORS)


# --------------------------------------------------------------------------- behaviour kept


def test_codes_leave_as_plain_strings() -> None:
    err = SizeMismatch("size 3 != 4", size=3)
    assert type(err.to_dict()["code"]) is str and str(err) == "E_SIZE_MISMATCH: size 3 != 4"
    assert json.dumps(err.to_dict()["code"]) == '"E_SIZE_MISMATCH"'
    finding = Finding(Code.E_FIXITY_ALTERED, "changed", "x")
    assert type(finding.to_dict()["code"]) is str and str(finding) == \
        "E_FIXITY_ALTERED [x]: changed"
    assert Code.F_EMPTY == "F_EMPTY" and "F_EMPTY" in {Code.F_EMPTY}
    assert f"{Code.E_INTERNAL}: x" == "E_INTERNAL: x"


def test_an_audit_event_with_a_code_encodes_as_with_the_plain_string() -> None:
    body = {"code": Code.I_UPLOAD_VERIFIED, "flags": [Code.F_EMPTY], "n": 1}
    plain = {"code": "I_UPLOAD_VERIFIED", "flags": ["F_EMPTY"], "n": 1}
    assert encode_fast(body) == encode(plain) == encode_fast(plain) == encode(body)


def test_rendition_failures_are_evidock_errors_with_their_codes(tmp_path: Path) -> None:
    listing = tmp_path / "segments.csv"
    listing.write_text("seg0.mp4,0.0,10.0\nseg1.mp4,10.5,20.0\n", encoding="utf-8")
    with pytest.raises(RenditionDiscontinuous) as gap:
        read_segment_list(listing, tmp_path)
    assert (gap.value.code, gap.value.details["segment"]) == ("E_RENDITION_DISCONTINUOUS", 1)
    assert gap.value.message == "segment 1 starts at 10500000 µs, previous ends at 10000000 µs"
    listing.write_text("", encoding="utf-8")
    with pytest.raises(RenditionEmpty) as empty:
        read_segment_list(listing, tmp_path)
    assert empty.value.code == "E_RENDITION_EMPTY"

    info = MediaInfo(format_names=("mov",), duration_s=20.0, size=None, bit_rate=None,
                     creation_time=None, tags=(), streams=())
    with pytest.raises(RenditionIncomplete) as short:
        check_coverage([CutSegment(0, tmp_path / "s", 0, 19_000_000)], info)
    assert short.value.code == "E_RENDITION_INCOMPLETE"
    assert isinstance(short.value, RenditionFailed) and isinstance(short.value, EvidockError)
