"""CLI hooks: plugins add command groups to ``crm``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    import click


@hookspec
def crm_register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``crm`` command line.

    Called once per ``crm`` invocation, before the command line is parsed.
    Commands get the running CRM with ``crmcore.cli.get_crm()``, print with
    ``crmcore.cli.output.emit`` (honouring ``--format table|json|csv``) and
    raise :class:`~crmcore.errors.CRMError` for user errors (one line on
    stderr, exit status 1). All implementations run; return values are ignored.

    :param cli: The root ``crm`` group; call ``cli.add_command(...)``.

    .. versionadded:: 0.1
    """
