"""The desk's languages: Chinese first, English switchable.

Catalogs are gettext ``.po`` files under ``locale/<lang>/``, one per page area (so each
area keeps its own words), read with Babel at first use and merged; no compile step.
The message ids are the English texts, so English needs no catalog and a missing
Chinese entry shows English rather than nothing (the tests list every page's untranslated
words). The language comes from the ``lang`` cookie the switcher sets, else the
browser's ``Accept-Language``, else Chinese.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po
from starlette.requests import Request

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
COOKIE = "evidock_lang"
LOCALE_DIR = Path(__file__).with_name("locale")
_LOCK = threading.Lock()
_CATALOGS: dict[str, dict[str, str]] = {}


@dataclass(frozen=True, slots=True)
class Words:
    """One language's gettext callables, handed to every template."""

    lang: str
    table: dict[str, str]

    def gettext(self, message: str, **values: object) -> str:
        text = self.table.get(message) or message
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        # Chinese has one form; English picks by n. Plural entries are keyed by the
        # singular id and hold the one Chinese form.
        text = self.table.get(singular) or (singular if n == 1 else plural)
        return text % {"num": n, **values}


def catalog(lang: str) -> dict[str, str]:
    """msgid → translation for ``lang`` (empty for English), read once."""
    with _LOCK:
        table = _CATALOGS.get(lang)
        if table is None:
            table = {}
            for po in sorted((LOCALE_DIR / lang).glob("*.po")):
                with po.open("rb") as fh:
                    for message in read_po(fh, locale=lang if lang != "zh" else "zh_Hans_CN"):
                        if not message.id or not message.string:
                            continue
                        key = message.id[0] if isinstance(message.id, tuple) else message.id
                        text = message.string
                        table[str(key)] = str(text[0] if isinstance(text, tuple) else text)
            _CATALOGS[lang] = table
    return table


def pick(request: Request) -> str:
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


def words(lang: str) -> Words:
    return Words(lang=lang, table=catalog(lang) if lang != "en" else {})


__all__ = ["COOKIE", "DEFAULT", "LANGUAGES", "Words", "catalog", "pick", "words"]
