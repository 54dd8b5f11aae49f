"""The console's languages: gettext catalogs (Babel), per-locale formatting, text direction.

Catalogs are ``locale/<lang>/LC_MESSAGES/console.po`` next to each template
folder (the core's in ``crmcore/console/locale``, a plugin's beside its
``templates``). They are compiled in memory with Babel when first needed, so a
fresh checkout needs no build step and an edited ``.po`` is never stale.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2.ext import Extension
from jinja2.lexer import TOKEN_DATA, Token, TokenStream

from crmcore.i18n import N_

if TYPE_CHECKING:
    import jinja2
    from babel.support import Translations

    from crmcore.crm import CRM

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "console"
#: Languages written right to left.
RTL_LANGUAGES = {"ar", "fa", "he", "ur"}

_lock = threading.Lock()


def catalog_dirs(crm: CRM) -> list[Path]:
    """Folders holding console catalogs: the core's, then each template folder's ``../locale``."""
    dirs = [LOCALE_DIR]
    for template_dir in crm.template_dirs:
        candidate = Path(template_dir).resolve().parent / "locale"
        if candidate.is_dir() and candidate not in dirs:
            dirs.append(candidate)
    return dirs


def available_languages(crm: CRM) -> list[str]:
    """English (the source language) and every language with a catalog (looked up once per CRM)."""
    cached: list[str] | None = getattr(crm, "_console_languages", None)
    if cached is not None:
        return cached
    found = {"en"}
    for folder in catalog_dirs(crm):
        found.update(p.parent.parent.name for p in folder.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    crm._console_languages = sorted(found)  # type: ignore[attr-defined]
    return crm._console_languages  # type: ignore[attr-defined,no-any-return]


def compile_po(path: Path, lang: str) -> Translations:
    """Compile one ``.po`` file in memory into gettext translations."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=DOMAIN)


def translations(crm: CRM, lang: str) -> Translations:
    """The merged translations of every catalog for *lang* (empty for English)."""
    from babel.support import Translations

    merged = Translations(domain=DOMAIN)
    for folder in catalog_dirs(crm):
        path = folder / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if path.exists():
            merged.merge(compile_po(path, lang))
    return merged


def text_direction(lang: str) -> str:
    """``rtl`` for Arabic, Persian, Hebrew and Urdu, else ``ltr``."""
    return "rtl" if lang.split("_")[0].split("-")[0] in RTL_LANGUAGES else "ltr"


def negotiate(crm: CRM, *, cookie: str | None, user_locale: str | None, accept: str | None) -> str:
    """The language of a request: the chosen one, the user's, the browser's, else the default."""
    languages = available_languages(crm)
    for choice in (cookie, user_locale):
        if choice and choice in languages:
            return choice
    if accept:
        wanted = []
        for part in accept.split(","):
            tag, _, quality = part.strip().partition(";q=")
            try:
                weight = float(quality) if quality else 1.0
            except ValueError:
                weight = 0.0
            wanted.append((weight, tag.strip().lower()))
        for _weight, tag in sorted(wanted, reverse=True):
            base = tag.split("-")[0]
            if base in languages:
                return base
    default = crm.settings.console_locale
    return default if default in languages else "en"


class Formatter:
    """Dates, numbers and money written the way *lang* writes them (Babel)."""

    def __init__(self, lang: str, timezone: str) -> None:
        from zoneinfo import ZoneInfo

        from babel import Locale

        self.lang = lang
        self.zone = ZoneInfo(timezone)
        #: Parsed once: Babel would parse the code again on every value.
        self.locale = Locale.parse(lang)

    def datetime(self, value: dt.datetime | None, format: str = "medium") -> str:
        """A moment in the CRM's time zone."""
        from babel.dates import format_datetime

        return "" if value is None else format_datetime(value, format=format, tzinfo=self.zone, locale=self.locale)

    def date(self, value: dt.date | dt.datetime | None, format: str = "medium") -> str:
        """A calendar date."""
        from babel.dates import format_date

        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            value = value.astimezone(self.zone).date()
        return format_date(value, format=format, locale=self.locale)

    def number(self, value: int | float | Decimal | None) -> str:
        """A number with the locale's separators."""
        from babel.numbers import format_decimal

        return "" if value is None else format_decimal(value, locale=self.locale)

    def percent(self, value: int | float | Decimal | None) -> str:
        """A fraction as a percentage (0.125 is 12.5%)."""
        from babel.numbers import format_percent

        return "" if value is None else format_percent(value, format="#,##0.0%", locale=self.locale)

    def money(self, value: int | float | Decimal | None, currency: str) -> str:
        """An amount with its currency."""
        from babel.numbers import format_currency

        return "" if value is None else format_currency(value, currency, locale=self.locale)


#: Between the parts of a description (Persian writes "، ").
LIST_SEPARATOR = N_(", ")


def describe(item: dict[str, Any], gettext: Callable[[str], str], fmt: Formatter) -> str:
    """A timeline item's description in the page's language.

    An item with a ``message`` (a msgid, or a list of them shown joined) is
    translated, its ``terms`` (words such as a stage) translated and its
    ``values`` formatted the locale's way: numbers, dates, and money given as
    ``{"amount": ..., "currency": ...}``. An item without one shows its ``text``.
    """
    message = item.get("message")
    if message is None:
        return str(item.get("text") or "")
    words = {name: _shown(value, fmt) for name, value in (item.get("values") or {}).items()}
    words.update({name: term(value, gettext) if value else "" for name, value in (item.get("terms") or {}).items()})
    try:
        parts = [gettext(part) % words for part in ([message] if isinstance(message, str) else message)]
    except (KeyError, TypeError, ValueError):  # a translation that does not fit its message
        return str(item.get("text") or "")
    return gettext(LIST_SEPARATOR).join(parts)


def term(value: str, gettext: Callable[[str], str]) -> str:
    """A word (a stage, a reason) in the page's language.

    Its translation; else, for a text the core stored with values in it
    (:data:`crmcore.i18n.STORED_MESSAGES`, such as ``score 55 >= 50``), its
    message translated with the same values; else *value* as it is.
    """
    translated = gettext(value)
    if translated != value:
        return translated
    for message, pattern in _stored_patterns():
        found = pattern.fullmatch(value)
        if found is not None:
            try:
                return gettext(message) % found.groupdict()
            except (KeyError, TypeError, ValueError):  # a translation that does not fit its message
                return value
    return value


@functools.cache
def _stored_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Each stored message with the pattern that finds its values (whole numbers) in a stored text."""
    from crmcore.i18n import STORED_MESSAGES

    found = []
    for message in STORED_MESSAGES:
        parts = re.split(r"%\((\w+)\)s", message)  # text, name, text, name, ..., text
        regex = "".join(re.escape(part) if n % 2 == 0 else f"(?P<{part}>-?[0-9]+)" for n, part in enumerate(parts))
        found.append((message, re.compile(regex)))
    return found


def _shown(value: Any, fmt: Formatter) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and "amount" in value and "currency" in value:
        return fmt.money(value["amount"], value["currency"])
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return fmt.number(value)
    if isinstance(value, dt.datetime):
        return fmt.datetime(value)
    if isinstance(value, dt.date):
        return fmt.date(value)
    return str(value)


class ConstantTranslations(Extension):
    """Translate ``{{ _("literal") }}`` once, when a template is compiled for a language.

    Each language has its own environment (see :class:`Environments`), so a
    literal message's translation is known before the template first renders:
    it is compiled in as text instead of a gettext call per render. The output
    is the same as newstyle gettext's (the translation is markup, ``%%`` is
    ``%``); calls with variables or on expressions stay calls.
    """

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        """Replace each ``{{ _("literal") }}`` by its translation as template text."""
        gettext: Callable[[str], str] | None = getattr(self.environment, "console_gettext", None)
        if gettext is None:
            yield from stream
            return
        window: list[Token] = []
        for token in stream:
            window.append(token)
            if len(window) < len(_LITERAL_CALL):
                continue
            text = _constant(window, gettext)
            if text is None:
                yield window.pop(0)
            else:
                yield Token(window[0].lineno, TOKEN_DATA, text)
                window.clear()
        yield from window


#: The tokens of ``{{ _("literal") }}``: (type, value or None for any).
_LITERAL_CALL = (("variable_begin", None), ("name", "_"), ("lparen", None), ("string", None), ("rparen", None),
                 ("variable_end", None))  # fmt: skip


def _constant(window: list[Token], gettext: Callable[[str], str]) -> str | None:
    for token, (kind, value) in zip(window, _LITERAL_CALL, strict=True):
        if token.type != kind or (value is not None and token.value != value):
            return None
    try:
        return gettext(window[3].value) % {}  # as newstyle gettext formats it
    except (TypeError, ValueError, KeyError):  # a message that needs variables: leave the call
        return None


class Environments:
    """One Jinja2 environment per language: the CRM's templates with gettext installed."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self._envs: dict[str, jinja2.Environment] = {}

    def get(self, lang: str) -> jinja2.Environment:
        """The environment rendering console pages in *lang*."""
        env = self._envs.get(lang)
        if env is not None:
            return env
        with _lock:
            env = self._envs.get(lang)
            if env is None:
                # Outside development a template is compiled once and never looked at on disk again.
                reload = self.crm.settings.environment == "development"
                env = self.crm.templates.overlay(extensions=["jinja2.ext.i18n", ConstantTranslations],
                                                 auto_reload=reload)  # fmt: skip
                # An overlay shares its parent's dicts: give each language its own.
                env.filters = dict(env.filters)
                env.globals = dict(env.globals)
                catalog = translations(self.crm, lang)
                env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
                fmt = Formatter(lang, self.crm.settings.timezone)
                env.extend(console_gettext=catalog.gettext, console_formatter=fmt)
                described = functools.partial(describe, gettext=catalog.gettext, fmt=fmt)
                env.filters.update({"datetime": fmt.datetime, "date": fmt.date, "number": fmt.number,
                                    "money": fmt.money, "percent": fmt.percent, "describe": described,
                                    "term": functools.partial(term, gettext=catalog.gettext)})  # fmt: skip
                env.globals.update({"lang": lang, "dir": text_direction(lang)})
                self._envs[lang] = env
        return env


def messages_in(paths: Iterable[Path]) -> set[str]:
    """Every translatable message under *paths* (for catalog checks).

    A folder's console templates (``_()`` and ``{% trans %}``) and a Python
    file's texts marked with :func:`crmcore.i18n.N_`.
    """
    from babel.messages.extract import extract_from_dir, extract_from_file

    found: set[str] = set()
    for path in paths:
        extracted: Iterable[tuple[Any, ...]]
        if path.suffix == ".py":
            extracted = ((None, *rest) for rest in extract_from_file("python", str(path), keywords={"N_": None}))
        else:
            extracted = extract_from_dir(
                str(path), method_map=[("**.html", "jinja2")],
                options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
            )  # fmt: skip
        for _file, _line, message, _comments, _context in extracted:
            found.add(message if isinstance(message, str) else message[0])
    return found


__all__ = [
    "ConstantTranslations", "Environments", "Formatter", "available_languages", "describe", "messages_in",
    "negotiate", "term", "text_direction", "translations",
]
