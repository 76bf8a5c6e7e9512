"""The station's signing keys on disk: ``keys/station.key`` (0600) + ``keys/keyring.json``.

Rotation writes a new private key and keeps every older *public* key in the keyring so
evidence signed before still verifies; the retired private key is deleted, since nothing
may sign with it again. All writes are atomic (temp, fsync, rename, fsync dir).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from integrity.errors import KeyError_
from integrity.keys import ALG, PROFILES, KeyPair, Keyring, new_keyring, profile_of, rotate


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new bytes, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StationKeys:
    def __init__(self, *, directory: Path) -> None:
        self.directory = directory
        self.private_path = directory / "station.key"
        self.keyring_path = directory / "keyring.json"

    def exists(self) -> bool:
        return self.private_path.is_file() and self.keyring_path.is_file()

    def init(self, *, profile: str | None = None) -> tuple[KeyPair, bool]:
        """Load the station key, creating it on first use. Returns (key, created).

        ``profile`` (``default`` or ``gm``) picks the algorithm of a new key; asked of an
        existing key set, a different profile is refused rather than silently ignored."""
        alg = _alg(profile)
        if self.exists():
            key = self.load()
            if profile is not None and key.alg != alg:
                raise KeyError_(f"the station already signs with {key.alg} (profile "
                                f"{profile_of(key.alg)}); change profile with "
                                f"`evidock keys rotate --profile {profile}`",
                                key_id=key.key_id)
            return key, False
        if self.keyring_path.exists() or self.private_path.exists():
            raise KeyError_(f"half a key set in {self.directory}: refusing to overwrite",
                            directory=str(self.directory))
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = KeyPair.generate(alg or ALG)
        atomic_write(self.private_path, key.to_pem(), mode=0o600)
        self._write_keyring(new_keyring(key.public))
        return key, True

    def load(self) -> KeyPair:
        try:
            key = KeyPair.from_pem(self.private_path.read_bytes())
        except FileNotFoundError:
            raise KeyError_("no station key; run `evidock keys init`",
                            path=str(self.private_path)) from None
        if key.key_id != self.keyring().current:
            raise KeyError_("station.key is not the keyring's current key",
                            key_id=key.key_id)
        return key

    def keyring(self) -> Keyring:
        return self.read_keyring(self.keyring_path)

    @staticmethod
    def read_keyring(path: Path) -> Keyring:
        """A keyring file (this station's, or a public one another station exported)."""
        try:
            return Keyring.from_dict(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise KeyError_("no keyring; run `evidock keys init`", path=str(path)) from None
        except (OSError, ValueError) as exc:
            raise KeyError_(f"keyring unreadable: {exc}", path=str(path)) from exc

    def rotate(self, *, profile: str | None = None) -> KeyPair:
        """A new current key of the same algorithm, or of ``profile``'s when given."""
        ring = self.keyring()
        key = KeyPair.generate(_alg(profile) or ring.current_key.alg)
        # Keyring first: if we die before the private key lands, load() refuses loudly
        # rather than signing with a key the keyring no longer calls current.
        self._write_keyring(rotate(ring, key.public))
        atomic_write(self.private_path, key.to_pem(), mode=0o600)
        return key

    def _write_keyring(self, ring: Keyring) -> None:
        data = json.dumps(ring.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.keyring_path, data, mode=0o644)


def _alg(profile: str | None) -> str | None:
    if profile is None:
        return None
    if profile not in PROFILES:
        raise KeyError_(f"unknown crypto profile {profile!r}: one of "
                        f"{', '.join(PROFILES)}", profile=profile)
    return PROFILES[profile]
