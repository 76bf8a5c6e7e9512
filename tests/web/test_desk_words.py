"""Every English text the desk shows has its Chinese: each `_("…")` in the templates and
page modules, the menu and the role names have an entry in a zh catalog, the catalogs
parse, and no two catalogs give one text two different translations."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from config.access import ROLES
from evidock.web import base, i18n

WEB = Path(base.__file__).parent
CALL = re.compile(r"""\b_\(\s*(?P<q>["'])(?P<id>.+?)(?P=q)\s*[,)]""", re.S)


def used_messages() -> dict[str, str]:
    found: dict[str, str] = {}
    files = [*WEB.glob("templates/**/*.html"), *WEB.glob("pages/*.py"), *WEB.glob("*.py")]
    for path in files:
        for m in CALL.finditer(path.read_text(encoding="utf-8")):
            found.setdefault(m.group("id"), str(path.relative_to(WEB)))
    for _path, title, _need in base.NAV:
        found.setdefault(title, "base.NAV")
    for role in ROLES:
        found.setdefault(role, "config.access.ROLES")
    return found


def test_every_shown_text_has_its_chinese() -> None:
    table = i18n.catalog("zh")
    missing = sorted(f"{text!r} ({where})" for text, where in used_messages().items()
                     if not table.get(text))
    assert not missing, "no zh translation for:\n" + "\n".join(missing)


def test_catalogs_parse_and_agree() -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in sorted((WEB / "locale" / "zh").glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh):
                if not message.id:
                    continue
                key, text = str(message.id), str(message.string)
                assert text, f"{po.name}: empty translation of {key!r}"
                if key in seen and seen[key][1] != text:
                    clashes.append(f"{key!r}: {seen[key][0]} {seen[key][1]!r} vs "
                                   f"{po.name} {text!r}")
                seen.setdefault(key, (po.name, text))
    assert not clashes, "\n".join(clashes)


def test_placeholders_survive_translation() -> None:
    table = i18n.catalog("zh")
    field = re.compile(r"%\((\w+)\)s")
    wrong = [k for k, v in table.items() if set(field.findall(k)) != set(field.findall(v))]
    assert not wrong, wrong
