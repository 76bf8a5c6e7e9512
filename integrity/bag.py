"""The BagIt side of a clip package (RFC 8493): declaration, manifests, file set, digests.

Every file of a package must be covered by a digest: payload files (``data/``) by both
payload manifests, every other file except the tag manifests themselves by both tag
manifests. A file covered by nothing, a listed file that is absent, a malformed manifest
line and a digest that differs are each a finding; digests are full SHA-256 and SHA-512
(never bagit's ``fast`` mode, which only counts files and bytes).

Why not ``bagit.Bag(path).validate()``: it opens every name it is given by path, so it
follows symbolic links and blocks on a FIFO; it reads tag files and manifest lines
unbounded (a 1 GiB line is 1 GiB of memory); it checks only that payload files are
covered (an unlisted tag file passes); it stops at the first kind of problem; its path
decoding handles only the first two ``%0A``/``%0D`` and never ``%25``; and it would hash
every file a second time. It does not chdir when validating (only ``make_bag`` and
``save`` do). So this module reads through :mod:`integrity.safefs` and takes from bagit
its RFC 2822 tag-file parser, fed with bytes already bounded and decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3

from integrity.codes import Code
from integrity.findings import Finding
from integrity.safefs import Entry, Inventory, PackageDir, Refused, display, read_chunk

BAG_ALGOS = ("sha256", "sha512")
PAYLOAD_MANIFESTS = tuple(f"manifest-{a}.txt" for a in BAG_ALGOS)
TAG_MANIFESTS = tuple(f"tagmanifest-{a}.txt" for a in BAG_ALGOS)
BAG_FILES = ("bagit.txt", "bag-info.txt", *PAYLOAD_MANIFESTS, *TAG_MANIFESTS)
#: Read when present: the gm profile's SM3 manifests (integrity/gmbag.py says when they
#: must be). Any tag manifest is exempt from being listed in one.
MANIFEST_NAMES = (*PAYLOAD_MANIFESTS, *TAG_MANIFESTS, "manifest-sm3.txt",
                  "tagmanifest-sm3.txt")
ALL_TAG_MANIFESTS = (*TAG_MANIFESTS, "tagmanifest-sm3.txt")
MAX_TAG_FILE = 1 << 20  # bagit.txt, bag-info.txt
MAX_MANIFEST = 32 << 20
MAX_LINE = 8 << 10
MAX_HASHED_FILE = 16 << 30  # a hostile sparse "segment" is refused, not hashed for minutes
MAX_LINE_FINDINGS = 20  # then one finding says how many more lines are malformed
_CHUNK = 1 << 20
_LINE = {a: re.compile(rf"([0-9a-fA-F]{{{n}}})[ \t]+(\S.*)") for a, n in
         (("sha256", 64), ("sha512", 128), ("sm3", 64))}
_ESCAPE = re.compile(r"%(0[aAdD]|25)")


@dataclass(frozen=True, kw_only=True)
class BagManifest:
    """One payload or tag manifest: path (bag-relative) -> lower-case hex digest."""

    name: str
    algo: str
    tag: bool
    digests: dict[str, str] = field(default_factory=dict)


def _decode_path(text: str) -> str:
    """RFC 8493 §2.1.3: %0A, %0D and %25 stand for LF, CR and '%'."""
    return _ESCAPE.sub(lambda m: {"0a": "\n", "0d": "\r", "25": "%"}[m[1].lower()], text)


def unsafe_path(path: str) -> bool:
    """Absolute, empty or dot parts, NUL: a name that could leave its place."""
    return (path.startswith("/") or "\0" in path
            or any(part in ("", ".", "..") for part in path.split("/")))


def parse_manifest(name: str, raw: bytes) -> tuple[BagManifest | None, list[Finding]]:
    """A manifest's entries, every bad line a finding (up to a bound) and skipped; None
    when it is not text at all (then it covers nothing, and that one finding says why)."""
    tag = name.startswith("tag")
    algo = name.removeprefix("tag").removeprefix("manifest-").removesuffix(".txt")
    out = BagManifest(name=name, algo=algo, tag=tag)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Finding(Code.E_PACKAGE_ENCODING, f"not UTF-8 (byte {exc.start}): no "
                              "entry of it is used", name, {"offset": exc.start})]
    problems: list[Finding] = []
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n")
                                  else text.split("\n"), 1):
        problem = _entry(out, line, number)
        if problem is not None:
            problems.append(problem)
    if not text.endswith("\n") and text:
        problems.append(_bad(name, "the last line has no line feed", len(text.split("\n"))))
    return out, _bounded(name, problems)


def _entry(out: BagManifest, line: str, number: int) -> Finding | None:
    if len(line) > MAX_LINE:
        return Finding(Code.E_PACKAGE_LIMIT, f"line {number} is longer than {MAX_LINE} "
                       "characters: skipped", out.name, {"line": number, "limit": MAX_LINE})
    match = _LINE[out.algo].fullmatch(line.rstrip("\r"))
    if match is None:
        return _bad(out.name, f"line {number} is not '<{out.algo}> <path>'", number)
    path = _decode_path(match[2])
    if unsafe_path(path):
        return Finding(Code.E_PACKAGE_PATH_UNSAFE, f"line {number} names a path that could "
                       "leave the package: never opened", out.name,
                       {"line": number, "path": display(path)})
    if path.startswith("data/") == out.tag or path in ALL_TAG_MANIFESTS:
        where = "a tag manifest lists a payload file" if out.tag else \
            "a payload manifest lists a file outside data/"
        return _bad(out.name, f"line {number}: {where}", number, path=display(path))
    if path in out.digests:
        return _bad(out.name, f"line {number} lists {display(path)} again", number)
    out.digests[path] = match[1].lower()
    return None


def _bad(name: str, message: str, line: int, **details: object) -> Finding:
    return Finding(Code.E_BAG_INVALID, message, name, {"line": line, **details})


def _bounded(name: str, problems: list[Finding]) -> list[Finding]:
    if len(problems) <= MAX_LINE_FINDINGS:
        return problems
    more = len(problems) - MAX_LINE_FINDINGS
    return [*problems[:MAX_LINE_FINDINGS],
            Finding(Code.E_BAG_INVALID, f"and {more} more malformed lines", name,
                    {"more": more})]


def parse_tags(name: str, raw: bytes) -> tuple[dict[str, str], list[Finding]]:
    """A tag file (bagit.txt, bag-info.txt) as name -> value, by bagit's own parser."""
    import bagit  # type: ignore[import-untyped]  # bagit ships no type information

    if raw.startswith(b"\xef\xbb\xbf"):
        return {}, [Finding(Code.E_BAG_INVALID, "starts with a byte-order mark", name)]
    try:
        stream = io.StringIO(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return {}, [Finding(Code.E_PACKAGE_ENCODING, f"not UTF-8 (byte {exc.start})", name,
                            {"offset": exc.start})]
    stream.name = name  # bagit names the file in its errors
    try:
        tags: dict[str, str] = {}
        for key, value in bagit._parse_tags(stream):
            if key in tags:
                raise bagit.BagError(f"{key} given twice")
            tags[key] = value
    except bagit.BagError as exc:
        return {}, [Finding(Code.E_BAG_INVALID, str(exc), name)]
    return tags, []


def declaration_findings(raw: bytes) -> list[Finding]:
    """bagit.txt must declare BagIt 1.0 with UTF-8 tag files."""
    tags, found = parse_tags("bagit.txt", raw)
    if found:
        return found
    version = tags.get("BagIt-Version")
    encoding = tags.get("Tag-File-Character-Encoding", "")
    if version != "1.0" or encoding.upper() not in ("UTF-8", "UTF8"):
        return [Finding(Code.E_BAG_INVALID, "not a BagIt 1.0 bag with UTF-8 tag files",
                        "bagit.txt", {"version": version, "encoding": encoding})]
    return []


def oxum_findings(raw: bytes, inventory: Inventory) -> list[Finding]:
    """bag-info.txt's Payload-Oxum against the payload's regular files."""
    tags, found = parse_tags("bag-info.txt", raw)
    if found or "Payload-Oxum" not in tags:
        return found
    match = re.fullmatch(r"(\d{1,20})\.(\d{1,20})", tags["Payload-Oxum"])
    if match is None:
        return [Finding(Code.E_BAG_INVALID, "Payload-Oxum is not <bytes>.<files>",
                        "bag-info.txt", {"value": tags["Payload-Oxum"][:100]})]
    files = inventory.files("data/")
    actual = (sum(e.size for e in files), len(files))
    claimed = (int(match[1]), int(match[2]))
    if claimed == actual:
        return []
    return [Finding(Code.E_BAG_OXUM, f"Payload-Oxum says {claimed[0]} bytes in {claimed[1]}"
                    f" files, the payload has {actual[0]} in {actual[1]}", "bag-info.txt",
                    {"claimed": list(claimed), "actual": list(actual)})]


def structure(texts: Mapping[str, bytes], inventory: Inventory,
              ) -> tuple[list[BagManifest], list[Finding]]:
    """The bag's declaration, Payload-Oxum and every manifest present (SM3 ones too),
    from the tag files already read into ``texts``: the manifests, and the findings."""
    found: list[Finding] = []
    if "bagit.txt" in texts:
        found += declaration_findings(texts["bagit.txt"])
    if "bag-info.txt" in texts:
        found += oxum_findings(texts["bag-info.txt"], inventory)
    manifests: list[BagManifest] = []
    for name in MANIFEST_NAMES:
        if name in texts:
            parsed, problems = parse_manifest(name, texts[name])
            manifests += [parsed] if parsed is not None else []
            found += problems
    return manifests, found


# --------------------------------------------------------------------------- file set


def covering(path: str, manifests: Iterable[BagManifest]) -> list[BagManifest]:
    """The manifests that must list ``path``: payload ones for data/, else the tag ones."""
    if path in ALL_TAG_MANIFESTS:
        return []
    return [m for m in manifests if m.tag != path.startswith("data/")]


def file_set_findings(inventory: Inventory, manifests: list[BagManifest], *,
                      expected: set[str], refused: set[str]) -> list[Finding]:
    """Missing, extra and uncovered files; ``refused`` paths are already reported."""
    listed = {p for m in manifests for p in m.digests}
    present = {e.path for e in inventory.files()}
    found = [Finding(Code.E_MISSING_FILE, "file listed by the package is missing",
                     display(p))
             for p in sorted((expected | listed) - present - refused)]
    for path in sorted(present):
        lacking = [m.name for m in covering(path, manifests) if path not in m.digests]
        if path not in expected:
            why = "covered by no manifest" if path not in listed else "though the bag lists it"
            found.append(Finding(Code.E_EXTRA_FILE, f"file not part of the package ({why})",
                                 display(path)))
        elif lacking:
            found.append(Finding(Code.E_BAG_UNLISTED, "no digest covers this file in "
                                 + ", ".join(lacking), display(path), {"manifests": lacking}))
    return found


# --------------------------------------------------------------------------- digests


@dataclass(frozen=True, kw_only=True)
class HashJob:
    """Hash one package file in one read: the bag algorithms, and BLAKE3 if asked."""

    entry: Entry
    algos: tuple[str, ...]
    blake3: bool = False


def digest_bytes(data: bytes, algos: Iterable[str]) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in algos}


def hash_files(pkg: PackageDir, jobs: list[HashJob]) -> dict[str, dict[str, str] | Finding]:
    """path -> {algo: hex} (BLAKE3 as 'blake3'), or why it was not read; files in parallel
    (the hash functions release the GIL)."""
    if not jobs:
        return {}
    workers = min(len(jobs), os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        return dict(zip((j.entry.path for j in jobs),
                        pool.map(lambda j: _hash_one(pkg, j), jobs), strict=True))


def _hash_one(pkg: PackageDir, job: HashJob) -> dict[str, str] | Finding:
    if job.entry.size > MAX_HASHED_FILE:
        return Finding(Code.E_PACKAGE_LIMIT, f"{job.entry.size} bytes, more than the "
                       f"{MAX_HASHED_FILE} a package file may have: not read",
                       display(job.entry.path), {"size": job.entry.size})
    hashers = [hashlib.new(a) for a in job.algos]
    b3 = blake3.blake3()
    buffer = memoryview(bytearray(_CHUNK))
    total = 0
    try:
        with pkg.opened(job.entry) as fd:
            while (n := read_chunk(fd, job.entry, buffer)) and total <= MAX_HASHED_FILE:
                total += n
                for h in hashers:
                    h.update(buffer[:n])
                if job.blake3:
                    b3.update(buffer[:n])
    except Refused as refused:
        return refused.finding
    out = {a: h.hexdigest() for a, h in zip(job.algos, hashers, strict=True)}
    if job.blake3:
        out["blake3"] = str(b3.hexdigest())
    return out


def digest_findings(path: str, actual: Mapping[str, str],
                    manifests: Iterable[BagManifest]) -> list[Finding]:
    """One finding for ``path`` if any manifest's digest differs from ``actual``."""
    differ = {m.name: {"expected": m.digests[path], "actual": actual[m.algo]}
              for m in covering(path, manifests)
              if path in m.digests and m.algo in actual and m.digests[path] != actual[m.algo]}
    if not differ:
        return []
    return [Finding(Code.E_BAG_DIGEST_MISMATCH, "digest differs from "
                    + ", ".join(sorted(differ)), display(path), {"manifests": differ})]
