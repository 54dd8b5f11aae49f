"""``crm plugin new NAME``: write a ready plugin distribution from a template.

The template (``crmcore/scaffold/template``) holds a setup.cfg with the entry
point, the package with one hook implementation, a table and its migration
branch, a CLI command, a template, and tests using crmcore's fixtures. File
and folder names and contents are Jinja2 templates.
"""

from __future__ import annotations

import keyword
import re
from datetime import date
from pathlib import Path

from crmcore.errors import Conflict, ValidationError

TEMPLATE = Path(__file__).resolve().parent / "template"
NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def plugin_names(name: str) -> dict[str, str]:
    """Every name derived from the plugin's name (one name per plugin, everywhere)."""
    if not NAME.match(name) or keyword.iskeyword(name) or name.endswith("_"):
        raise ValidationError({"name": "use 2-40 lower-case letters, digits and underscores, starting with a letter"})
    return {
        "name": name,
        "package": f"crmcore_{name}",
        "distribution": f"crmcore-{name.replace('_', '-')}",
        "command": name.replace("_", "-"),
        "model": "".join(part.capitalize() for part in name.split("_")) + "Note",
        "description": f"The {name} plugin for crmcore.",
        "today": date.today().isoformat(),
    }


def generate(name: str, target: Path) -> list[Path]:
    """Write the plugin distribution for *name* into *target*; return the files written."""
    import jinja2

    names = plugin_names(name)
    if target.exists() and any(target.iterdir()):
        raise Conflict(f"{target} exists and is not empty")
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    written = []
    for source in sorted(TEMPLATE.rglob("*.j2")):
        relative = env.from_string(str(source.relative_to(TEMPLATE))).render(names).removesuffix(".j2")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(env.from_string(source.read_text(encoding="utf-8")).render(names), encoding="utf-8")
        written.append(destination)
    return written
