"""``crm plugins list``: what is installed, enabled, broken."""

from __future__ import annotations

import click

from crmcore.cli import CLIState
from crmcore.cli.output import emit, format_option


@click.group()
def plugins() -> None:
    """Installed plugins and their hooks."""


@plugins.command("list")
@format_option
@click.pass_context
def list_plugins(ctx: click.Context, fmt: str) -> None:
    """List installed plugins: version, hooks implemented, enabled, disabled or broken.

    Works even when a plugin fails to load (it is shown as broken, with why).

    \b
    Example:
      crm plugins list --format json
    """
    state: CLIState = ctx.find_root().obj
    crm = state.build(tolerant=True)
    rows = []
    for name in ["core", *sorted(crm.plugins.plugins)]:
        record = crm.plugins.plugins.get(name)
        rows.append({
            "name": name,
            "version": record.version if record else _core_version(),
            "distribution": record.distribution if record else "crmcore",
            "status": record.status if record else "enabled",
            "hooks": crm.plugins.hooks_of(name),
            "error": record.error if record else None,
        })  # fmt: skip
    emit(rows, fmt, ["name", "version", "distribution", "status", "hooks", "error"])
    if any(row["status"] == "broken" for row in rows):
        ctx.exit(1)


def _core_version() -> str:
    from crmcore import __version__

    return __version__


COMMANDS = [plugins]
