"""``crm init`` and ``crm db upgrade|status|check``."""

from __future__ import annotations

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, format_option


@click.command()
def init() -> None:
    """Create (or upgrade) the database and store plugins' custom fields.

    \b
    Example:
      crm --database-url sqlite:///crm.db init
    """
    from crmcore.migrate import upgrade

    crm = get_crm()
    applied = upgrade(crm)
    url = crm.engine.url.render_as_string(hide_password=True)
    click.echo(f"database {url} is ready ({len(applied)} revision(s) applied)")


@click.group()
def db() -> None:
    """Schema migrations of the core and every enabled plugin."""


@db.command()
@click.argument("branch", required=False)
def upgrade(branch: str | None) -> None:
    """Apply pending migrations: all branches, or one plugin's (BRANCH@head).

    Running it twice is a no-op.

    \b
    Examples:
      crm db upgrade
      crm db upgrade ticketing
    """
    from crmcore.migrate import upgrade as run_upgrade

    applied = run_upgrade(get_crm(), branch)
    click.echo("applied: " + ", ".join(applied) if applied else "already up to date")


@db.command()
@format_option
def status(fmt: str) -> None:
    """Show each branch's applied revision and head.

    \b
    Example:
      crm db status --format json
    """
    from crmcore.migrate import status as branch_status

    emit(branch_status(get_crm()), fmt, ["branch", "current", "head", "up_to_date"])


@db.command()
def check() -> None:
    """Compare the migrated schema with the models; exit 1 when they differ.

    \b
    Example:
      crm db check
    """
    from crmcore.migrate import schema_diff

    diff = schema_diff(get_crm())
    for item in diff:
        click.echo(repr(item))
    if diff:
        raise click.exceptions.Exit(1)
    click.echo("schema matches the models")


COMMANDS = [init, db]
