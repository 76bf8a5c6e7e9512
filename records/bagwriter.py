"""Writing a package's BagIt layer: manifests over what ``data/`` already holds.

SHA-256 and SHA-512 always (RFC 8493); a station of the ``gm`` profile also writes the
SM3 manifests and signs the payload one with SM2 (integrity/gmbag.py). bag-info.txt
names the profile, so a verifier knows which layer must be there.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

from integrity import gmbag, keys
from integrity import package as pkg

_CHUNK = 1 << 20


def write_bag(root: Path, *, bag_id: str, day: date, keypair: keys.KeyPair) -> None:
    """bagit.txt, bag-info.txt and every manifest for the files under ``root/data``."""
    gm = keypair.alg == keys.SM2
    algos = (*pkg.BAG_ALGOS, "sm3") if gm else pkg.BAG_ALGOS
    sums, total, count = _payload_sums(root, algos)
    (root / "bagit.txt").write_bytes(pkg.BAGIT_TXT)
    info = (f"Bag-Software-Agent: evidock\nBagging-Date: {day}\n"
            f"External-Identifier: {bag_id}\nPayload-Oxum: {total}.{count}\n"
            + gmbag.profile_line(keypair.alg))
    (root / "bag-info.txt").write_text(info, encoding="utf-8")
    tagged = ["bagit.txt", "bag-info.txt"]
    for algo in algos:
        name = f"manifest-{algo}.txt"
        (root / name).write_bytes(pkg.bag_manifest_lines(sums[algo]))
        tagged.append(name)
    if gm:  # the SM3 digests, signed by the station's SM2 key
        signed = gmbag.sign((root / gmbag.SM3_MANIFEST).read_bytes(), keypair)
        (root / gmbag.SIG).write_bytes(signed)
        tagged.append(gmbag.SIG)
    for algo in algos:
        tags = {n: hashlib.new(algo, (root / n).read_bytes()).hexdigest() for n in tagged}
        (root / f"tagmanifest-{algo}.txt").write_bytes(pkg.bag_manifest_lines(tags))


def _payload_sums(root: Path, algos: tuple[str, ...]
                  ) -> tuple[dict[str, dict[str, str]], int, int]:
    payload = sorted(p for p in (root / "data").rglob("*") if p.is_file())
    sums: dict[str, dict[str, str]] = {a: {} for a in algos}
    total = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    for path in payload:
        rel = pkg.relpath(root, path)
        hashers = {a: hashlib.new(a) for a in algos}
        with open(path, "rb") as fh:
            while n := fh.readinto(buffer):
                total += n
                for h in hashers.values():
                    h.update(view[:n])
        for algo, h in hashers.items():
            sums[algo][rel] = h.hexdigest()
    return sums, total, len(payload)
