"""`evidock verify`: anyone runs it offline on a clip package, so it stays light.

At import it needs only typer; `integrity` loads to verify a package. A stored
recording is verified by the station service (it alone reads the store): the client
loads httpx to ask it. `evidock.entry`
sends `evidock verify …` here without importing the full command tree (start-up was
most of a verify's time).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evidock.cli_base import ConfigOpt, JsonOpt, Reply, command
from integrity.errors import KeyError_, NotFound

if TYPE_CHECKING:
    from integrity.findings import Finding
    from integrity.keys import PublicKey


def _keys(paths: list[Path]) -> tuple[dict[str, PublicKey] | None, list[Finding]]:
    """The keys in ``paths`` by id (None: none usable), and the files refused unread."""
    from integrity.package import trusted_key

    trusted: dict[str, PublicKey] | None = None
    refused: list[Finding] = []
    for path in paths:
        given, bad = trusted_key(path)
        refused += bad
        trusted = {**(trusted or {}), **given} if given is not None else trusted
    return trusted, refused


def _package(target: Path, key: list[Path], tsa_roots: list[Path],
             attested: list[dict[str, Any]], center_key: list[Path]) -> list[Finding]:
    """A key file that is a link or no regular file is a finding (refused unread); the
    package is then checked against its own keyring, so every other finding still shows.
    Several ``--key`` files are all trusted: an export made after a rotation holds
    manifests signed by the key before it (e.g. Ed25519, then SM2 after a change of
    profile). ``attested`` receives each timestamp token's attested time beside the
    claimed one. ``center_key``: the center that made a package from footage it read
    back signs its clip.json; the station's key still signs the manifest."""
    from integrity.package import verify_package
    from integrity.timestampcheck import load_roots

    roots = load_roots(tsa_roots) if tsa_roots else None
    trusted, refused = _keys(key)
    center, refused_center = _keys(center_key)
    return [*refused, *refused_center,
            *verify_package(target, trusted=trusted, tsa_roots=roots, attested=attested,
                            center=center)]


def _stored(recording_id: str, config: Path | None) -> dict[str, Any]:
    """The station service verifies a stored recording (it alone reads the store)."""
    from evidock.client import station

    with station(config) as st:
        answer: dict[str, Any] = st.get("/verify", recording=recording_id)
    return answer


@command
def verify(
    target: Annotated[str, typer.Argument(help="Clip package directory or recording id.")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", help="Station public key (PEM); repeat for the keys before a "
        "rotation.")] = None,
    center_key: Annotated[list[Path] | None, typer.Option(
        "--center-key", help="The center's public key (PEM), for a package the center "
        "exported: it signs clip.json, the station's key the manifest.")] = None,
    tsa_root: Annotated[list[Path] | None, typer.Option(
        "--tsa-root", help="A TSA root certificate (PEM) the package's RFC 3161 tokens "
        "must chain to; repeat for several.")] = None,
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> Reply:
    """Verify a clip package (offline) or a stored recording; report every finding."""
    attested: list[dict[str, Any]] = []
    if Path(target).is_dir() or Path(target).is_symlink():  # a link: refused, a finding
        findings = [f.to_dict() for f in _package(Path(target), key or [], tsa_root or [],
                                                  attested, center_key or [])]
    elif "/" in target or Path(target).exists():
        raise NotFound(f"{target} is not a clip package directory", path=target)
    elif key or tsa_root or center_key:
        raise KeyError_("--key and --tsa-root apply to clip packages; stored recordings "
                        "use the station keyring")
    else:
        findings = _stored(target, config)["findings"]
    failed = [f for f in findings if _is_failure(str(f["code"]))]
    shown = {"timestamps": attested} if attested else {}  # a package's tokens, if any
    suites = _suites(Path(target)) if Path(target).is_dir() and not failed else []
    return Reply({"target": target, "ok": not failed, "findings": findings, **shown},
                 human=lambda: _print_findings(findings, failed, attested, suites),
                 exit_code=1 if failed else 0)


def _is_failure(code: str) -> bool:
    """integrity.package.is_failure, on a finding's JSON form: W_ findings hold."""
    return not code.startswith("W_")


_SUITES = {"default": "Ed25519 signatures, SHA-256/SHA-512 manifests",
           "gm": "SM2 signatures (GB/T 32918), SM3 manifests (GB/T 32905) beside "
                 "SHA-256/SHA-512"}


def _suites(target: Path) -> list[str]:
    """The crypto profiles a verified package (or a case export's packages) declare in
    bag-info.txt, for the report: read only after verification found nothing."""
    from integrity import gmbag
    from integrity.bag import MAX_TAG_FILE, parse_tags
    from integrity.codes import Code
    from integrity.safefs import Refused, read_named_file

    found: set[str] = set()
    for root in (target, *sorted(p for p in target.iterdir() if p.is_dir())):
        try:
            raw = read_named_file(root / "bag-info.txt", MAX_TAG_FILE,
                                  code=Code.E_PACKAGE_PATH_UNSAFE)
        except (OSError, Refused):
            continue  # not a bag (data/, a case export's top level)
        found.add(gmbag.declared(parse_tags("bag-info.txt", raw)[0]))
    return sorted(found)


def _print_findings(findings: list[dict[str, Any]], failed: list[dict[str, Any]],
                    attested: list[dict[str, Any]], suites: list[str]) -> None:
    for t in attested:  # a pending one is a W_TIMESTAMP_PENDING finding below
        if t.get("attested_at") is None:
            continue
        where = f"{t['package']}/" if "package" in t else ""
        diff = t.get("difference_us")
        delta = "" if diff is None else f" ({diff / 1e6:+.3f} s)"
        typer.echo(f"timestamp {where}{t['file']}: attested {t['attested_at']} by "
                   f"{t['tsa']}, claimed {t['claimed_at']}{delta}")
    for f in findings:
        where = f" [{f['subject']}]" if f["subject"] else ""
        typer.echo(f"{f['code']}{where}: {f['message']}")
    for suite in suites:
        typer.echo(f"crypto profile {suite}: {_SUITES.get(suite, 'unknown')}")
    typer.echo("OK: verified" if not failed else f"FAILED: {len(failed)} finding(s)")


verify_app = typer.Typer(add_completion=False)
verify_app.command()(verify)
