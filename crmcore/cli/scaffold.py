"""``crm plugin new NAME``."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("plugin")
def plugin() -> None:
    """Create plugins."""


@plugin.command("new")
@click.argument("name")
@click.option("--directory", "-d", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write it (default: ./crmcore-NAME).")  # fmt: skip
def plugin_new(name: str, directory: Path | None) -> None:
    """Write a ready plugin distribution NAME: entry point, a hook, a table and its
    migration branch, a command, a template and tests. Install it with `pip install -e`.

    \b
    Example:
      crm plugin new loyalty && pip install -e crmcore-loyalty && crm db upgrade loyalty
    """
    from crmcore.scaffold import generate, plugin_names

    target = directory or Path(plugin_names(name)["distribution"])
    files = generate(name, target)
    click.echo(f"wrote {len(files)} files to {target}; next: pip install -e {target}")


COMMANDS = [plugin]
