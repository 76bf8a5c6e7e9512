"""What a clip package holds beside its segments, checked: the original camera files
(``clip.json`` "originals") and the human-readable ``index.html``.

Pure functions over what :mod:`integrity.clipcheck` has read and hashed; each problem is
a finding, nothing raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrity import safejson
from integrity.codes import Code
from integrity.findings import Finding
from integrity.safefs import display

ORIGINALS = "originals"  # in data/
EVIDENCE = ("data/segments/", "data/derivative/clip.", f"data/{ORIGINALS}/")


def is_original_only(clip: Any) -> bool:
    """A photo's (log's) package: no rendition, so no manifest.json or proofs.json."""
    return isinstance(clip, dict) and "rendition" in clip and clip["rendition"] is None


def original_entries(clip: Any) -> tuple[dict[str, dict[str, Any]], list[Finding]]:
    """clip.json's originals by their path in the bag, and why any is unusable."""
    listed = clip.get("originals", []) if isinstance(clip, dict) else []
    found: list[Finding] = []
    entries: dict[str, dict[str, Any]] = {}
    for entry in listed if isinstance(listed, list) else [None]:
        name = entry.get("file") if isinstance(entry, dict) else None
        head, _, tail = name.partition("/") if isinstance(name, str) else ("", "", "")
        if head != ORIGINALS or not tail or "/" in tail or tail.startswith(".") \
                or "\0" in tail:
            found.append(Finding(Code.E_PACKAGE_PATH_UNSAFE, "clip.json names an original "
                                 "that is not a plain file in data/originals/: never opened",
                                 "clip.json", {"file": display(str(name))}))
        else:
            assert isinstance(entry, dict)
            entries[f"data/{name}"] = entry
    return entries, found


def original_findings(entries: Mapping[str, dict[str, Any]], *, clip: Any,
                      measured: Mapping[str, Mapping[str, str]],
                      sizes: Mapping[str, int]) -> list[Finding]:
    """Each original file is the one clip.json lists, and that is clip.json's
    ``original`` (which the signed manifest, where there is one, names)."""
    found = []
    own = clip.get("original") if isinstance(clip, dict) else None
    for path, entry in sorted(entries.items()):
        subject = path.removeprefix("data/")
        got = measured.get(path)
        if got is not None and (sizes.get(path) != entry.get("size") or any(
                got[k] != entry.get(k) for k in ("blake3", "sha256") if k in got)):
            found.append(Finding(Code.E_DIGEST_MISMATCH, "the original file is not the one "
                                 "clip.json lists (size or digest)", display(subject),
                                 {"expected": safejson.brief(entry.get("blake3")),
                                  "actual": got.get("blake3")}))
        if not isinstance(own, dict) or any(entry.get(k) != own.get(k)
                                            for k in ("size", "blake3", "sha256")):
            found.append(Finding(Code.E_ORIGINAL_MISMATCH, "clip.json lists an original that "
                                 "is not the recording's", display(subject),
                                 {"original": safejson.brief(own)}))
    return found


def index_findings(page: bytes, sums: Mapping[str, str], named: set[str | None],
                   ) -> list[Finding]:
    """index.html lists every evidence file (segments, derivative, originals) with the
    bag's SHA-256 for it; a file already named (changed, missing) is not named again."""
    text = page.decode("utf-8", "replace")
    return [Finding(Code.E_INDEX_MISMATCH, "index.html does not list this file with its "
                    "SHA-256", display(path), {"sha256": digest})
            for path, digest in sorted(sums.items())
            if path.startswith(EVIDENCE) and path not in named
            and path.removeprefix("data/") not in named
            and not (path in text and digest in text)]


__all__ = ["EVIDENCE", "ORIGINALS", "index_findings", "is_original_only",
           "original_entries", "original_findings"]
