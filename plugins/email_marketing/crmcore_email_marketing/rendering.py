"""Rendering templates end users author: Jinja2 in the sandbox, autoescaped, inside a shared layout.

A template's HTML is placed in its layout (``email/layout.html`` from the
shared templates/ folder) as the ``content`` block, so one render per
recipient yields the whole page. Names a template does not know (a typo, a
custom field nobody declared) are errors naming the line, found when the
template is saved and again before any send; a contact's empty field renders
as empty, and ``{{ contact.first_name or "there" }}`` (or ``| default("there",
true)``) gives a fallback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import SecurityError

from crmcore.errors import ValidationError

if TYPE_CHECKING:
    from crmcore.crm import CRM
    from crmcore.models import Contact

#: The contact fields a template may use as ``contact.<name>``.
CONTACT_FIELDS = (
    "id", "email", "first_name", "last_name", "title", "phone", "city", "region", "country",
    "language", "timezone", "stage", "source", "score",
)  # fmt: skip

_PREFIX = "email_marketing:"


class TemplateProblem(ValidationError):
    """A template that does not compile or render, with the line it failed on."""


def contact_context(contact: Contact | Any, custom_fields: tuple[str, ...]) -> dict[str, Any]:
    """The values a template sees as ``contact``: its fields, ``name``, and ``custom.<field>``."""
    values: dict[str, Any] = {name: getattr(contact, name) for name in CONTACT_FIELDS}
    given = contact.custom or {}
    values["custom"] = {name: given.get(name) for name in custom_fields}
    full = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    values["name"] = full or None
    return values


#: A sample value of each custom field type, for checking templates.
SAMPLES: dict[str, Any] = {"integer": 1, "number": 1.5, "bool": True, "date": date(2026, 1, 5)}


def sample_context(custom_fields: tuple[str, ...], types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A made-up contact for checking a template (every field filled in, custom fields typed)."""
    values: dict[str, Any] = {name: f"<{name}>" for name in CONTACT_FIELDS}
    values.update(id=0, score=0, email="ada@example.com", first_name="Ada", last_name="Lovelace", name="Ada Lovelace")
    values["custom"] = {name: SAMPLES.get((types or {}).get(name, ""), f"<{name}>") for name in custom_fields}
    return values


def error_line(exc: BaseException, name: str) -> int | None:
    """The line of template *name* where *exc* happened (syntax or runtime), if known."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.name == name:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe(exc: BaseException, part: str, name: str) -> str:
    """One line saying which part and line of a template failed, and why."""
    line = error_line(exc, name)
    where = f"{part}, line {line}" if line else part
    if isinstance(exc, jinja2.UndefinedError):
        why = f"unknown name: {exc.message}"
    elif isinstance(exc, SecurityError):
        why = f"not allowed in a template: {exc}"
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        why = f"syntax error: {exc.message}"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return f"{where}: {why}"


class _Sources(jinja2.BaseLoader):
    """Serves the parts of the templates being rendered, under ``email_marketing:<id>:<part>``."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source = self.sources.get(template)
        if source is None:
            raise jinja2.TemplateNotFound(template)
        return source, template, lambda: self.sources.get(template) == source


class CompiledTemplate:
    """A template's subject(s), HTML and text compiled once, rendered per contact."""

    def __init__(
        self,
        crm: CRM,
        *,
        key: str,
        subject: str,
        html: str,
        text: str | None,
        layout: str,
        subjects: Mapping[str, str] | None = None,
    ) -> None:
        self.crm = crm
        loader = _Sources()
        # The user's template lives in the layout as its content block; its lines keep their numbers.
        loader.sources[f"{_PREFIX}{key}:html"] = (
            "{% extends " + _quote(layout) + " %}{% block content %}" + html + "{% endblock %}"
        )
        if text:
            loader.sources[f"{_PREFIX}{key}:text"] = text
        all_subjects = {"": subject, **dict(subjects or {})}
        for label, source in all_subjects.items():
            loader.sources[f"{_PREFIX}{key}:subject{label}"] = source
        env = _environment(crm).overlay(loader=jinja2.ChoiceLoader([loader, _environment(crm).loader]))  # type: ignore[list-item]
        self.key = key
        # Subject and text parts are plain text: escaping them would show "&amp;" to readers.
        plain = env.overlay(autoescape=False)
        errors: dict[str, str] = {}
        self.html = self._compile(env, f"{_PREFIX}{key}:html", "html", errors)
        self.text = self._compile(plain, f"{_PREFIX}{key}:text", "text", errors) if text else None
        self.subjects = {
            label: self._compile(plain, f"{_PREFIX}{key}:subject{label}", f"subject {label}".strip(), errors)
            for label in all_subjects
        }
        if errors:
            raise TemplateProblem(errors)

    @staticmethod
    def _compile(env: jinja2.Environment, name: str, part: str, errors: dict[str, str]) -> jinja2.Template:
        try:
            return env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            errors[part] = f"layout {exc.name!r} not found in the template folders"
        except jinja2.TemplateSyntaxError as exc:
            errors[part] = describe(exc, part, exc.name or name)
        return jinja2.Template("")

    def render_subject(self, context: dict[str, Any], variant: str | None = None) -> str:
        """The subject line for *context* (the A/B *variant*'s when given); one line."""
        template = self.subjects.get(variant or "", self.subjects[""])
        subject = self._render(template, "subject", context)
        return " ".join(subject.split())

    def render_html(self, context: dict[str, Any]) -> str:
        """The whole HTML page (layout included)."""
        return self._render(self.html, "html", context)

    def render_text(self, context: dict[str, Any]) -> str | None:
        """The written text part, or None (then it is generated from the HTML)."""
        if self.text is None:
            return None
        return self._render(self.text, "text", context)

    def _render(self, template: jinja2.Template, part: str, context: dict[str, Any]) -> str:
        try:
            return template.render(context)
        except Exception as exc:  # a user's template may raise anything (a division by zero too)
            raise TemplateProblem({part: describe(exc, part, template.name or "")}) from None

    def check(self, context: dict[str, Any]) -> None:
        """Render every part for *context*; all errors at once, each naming its line."""
        errors: dict[str, str] = {}
        parts: list[tuple[str, Callable[[], object]]] = [("html", lambda: self.render_html(context))]
        if self.text is not None:
            parts.append(("text", lambda: self.render_text(context)))
        for label in self.subjects:
            parts.append((f"subject {label}".strip(), lambda label=label: self.render_subject(context, label)))
        for _part, run in parts:
            try:
                run()
            except TemplateProblem as exc:
                errors.update(exc.errors)
        if errors:
            raise TemplateProblem(errors)


def _environment(crm: CRM) -> jinja2.Environment:
    """The CRM's sandbox, strict about unknown names (a typo is an error, not an empty string)."""
    cached = crm.__dict__.get("_email_marketing_sandbox")
    if cached is None:
        cached = crm.sandbox.overlay(undefined=jinja2.StrictUndefined)
        crm.__dict__["_email_marketing_sandbox"] = cached
    env: jinja2.Environment = cached
    return env


def _quote(value: str) -> str:
    if not re.fullmatch(r"[\w./-]+", value):
        raise ValidationError({"layout": f"{value!r} is not a template path"})
    return f'"{value}"'


_HREF = re.compile(r'(<a\b[^>]*?\bhref=")(https?://[^"]+)(")', re.IGNORECASE)


def rewrite_links(html: str, rewrite: Callable[[str], str | None]) -> str:
    """Replace the ``http(s)`` targets of ``<a href>`` with ``rewrite(url)`` (None keeps a link)."""
    import html as html_lib

    def replace(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(2))
        new = rewrite(url)
        if new is None:
            return match.group(0)
        return f"{match.group(1)}{html_lib.escape(new, quote=True)}{match.group(3)}"

    return _HREF.sub(replace, html)


__all__ = [
    "CONTACT_FIELDS",
    "CompiledTemplate",
    "TemplateProblem",
    "contact_context",
    "describe",
    "error_line",
    "rewrite_links",
    "sample_context",
]
