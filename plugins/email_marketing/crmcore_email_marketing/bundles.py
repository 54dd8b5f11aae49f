"""The bundle item kind email marketing applies: ``email_marketing.template``.

Key: the template's name. Data: ``{"subject", "html", "text", "layout"}`` (``text``
and ``layout`` optional), checked as ``crm campaign``'s own templates are: a
template that does not compile or render is refused, naming the line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.bundles import BundleKind
from crmcore.errors import ValidationError
from crmcore_email_marketing.models import Template

if TYPE_CHECKING:
    from crmcore.context import HookContext

FIELDS = ("subject", "html", "text", "layout")


def read_template(ctx: HookContext, key: str) -> dict[str, Any] | None:
    """A stored template's state, or ``None``."""
    row = ctx.first(Template, Template.name == key)
    if row is None:
        return None
    return {"subject": row.subject, "html": row.html, "text": row.text, "layout": row.layout}


def write_template(ctx: HookContext, key: str, data: dict[str, Any]) -> None:
    """Create or update the template through the template service."""
    from crmcore_email_marketing import email_marketing

    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValidationError({"data": f"a template takes {', '.join(FIELDS)}; not {', '.join(unknown)}"})
    templates = email_marketing(ctx.crm).templates
    if ctx.first(Template, Template.name == key) is None:
        templates.create(key, **data)
    else:
        templates.update(key, **data)


KINDS = [BundleKind(name="email_marketing.template", read=read_template, write=write_template,
                    help="an email template: {subject, html, text, layout}")]  # fmt: skip
