"""The ``crm`` command line (click).

The core's commands are attached here; plugins add theirs through
``crm_register_commands``. User errors print one line on stderr and exit 1;
usage errors exit 2. The web stack and Celery are never imported by a
command that does not need them.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from crmcore.errors import CRMError

if TYPE_CHECKING:
    from crmcore.crm import CRM


class CLIState:
    """The root options, and the CRM built from them on first use."""

    def __init__(self, params: dict[str, Any], *, own_process: bool = False) -> None:
        self.params = params
        #: True in the ``crm`` script's own process (not under a test runner): start-up objects are frozen.
        self.own_process = own_process
        self._crm: CRM | None = None
        self.commands_loaded = False

    @property
    def crm(self) -> CRM:
        """The CRM for this invocation (built once, lazily)."""
        if self._crm is None:
            self._crm = self.build()
        return self._crm

    def build(self, *, tolerant: bool = False) -> CRM:
        """Construct the CRM from the root options, ``crm.toml`` and ``CRMCORE_*``."""
        plugins = self.params.get("plugins")
        options: dict[str, Any] = {}
        if self.params.get("trace"):
            options["trace_hooks"] = True
        with startup_phase(freeze=self.own_process):
            from crmcore.crm import CRM

            return CRM(
                database_url=self.params.get("database_url"),
                plugins=[p.strip() for p in plugins.split(",") if p.strip()] if plugins else None,
                config_file=self.params.get("config"),
                tolerant=tolerant,
                **options,
            )


@contextmanager
def startup_phase(*, freeze: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector while the command line and the CRM are built.

    Start-up creates tens of thousands of objects that live as long as the
    process (SQLAlchemy, the mapped models, the plugins); the collector would
    scan them over and over, about a tenth of a short command's time, and find
    nothing to free. It runs again when the block ends; with *freeze* (the
    ``crm`` process itself) what start-up built is left out of later
    collections for good (:func:`gc.freeze`).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()


def get_crm() -> CRM:
    """The CRM of the running ``crm`` command (for plugin commands)."""
    return root_state(click.get_current_context()).crm


def root_state(ctx: click.Context) -> CLIState:
    """The :class:`CLIState` of the running ``crm`` command, holding the parsed root options.

    Plugin commands are looked up before the root callback runs, so the root
    options are copied in here as well as there.
    """
    root = ctx.find_root()
    if root.obj is None:
        root.obj = CLIState({})
    state: CLIState = root.obj
    for name, value in root.params.items():
        state.params.setdefault(name, value)
    return state


class CRMGroup(click.Group):
    """The root group: loads plugin commands lazily and turns CRMErrors into one line."""

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        state = root_state(ctx)
        if state.commands_loaded:
            return
        state.commands_loaded = True
        try:
            crm = state.crm
        except CRMError:
            return  # the error is reported when a command needs the CRM
        crm.plugins.call("crm_register_commands", cli=self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugin_commands(ctx)
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            acting = ctx.params.get("as_user")
            if acting:
                with root_state(ctx).crm.acting_as(acting):
                    return super().invoke(ctx)
            return super().invoke(ctx)
        except CRMError as exc:
            if ctx.params.get("debug"):
                raise
            raise UserError(exc) from exc


class UserError(click.ClickException):
    """A CRMError shown as one line on stderr, exit status 1."""

    def __init__(self, error: CRMError) -> None:
        super().__init__(str(error))
        self.error = error

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def build_cli() -> click.Group:
    """A fresh ``crm`` group with the core's commands (plugins add theirs lazily)."""

    @click.group(cls=CRMGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.option(
        "--database-url",
        envvar="CRMCORE_DATABASE_URL",
        metavar="URL",
        help="SQLAlchemy URL (default: sqlite:///crm.db, or crm.toml / CRMCORE_DATABASE_URL).",
    )
    @click.option(
        "--plugins",
        envvar="CRMCORE_PLUGINS",
        metavar="A,B",
        help="Enable only these plugins (default: every installed plugin).",
    )
    @click.option(
        "--config",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Settings file (default: ./crm.toml if present).",
    )
    @click.option(
        "--as",
        "as_user",
        envvar="CRMCORE_AS",
        metavar="USER",
        help="Act as this user (email or id): their permissions and record rules apply, the audit names them.",
    )
    @click.option("--trace", is_flag=True, help="Log every hook call with its duration.")
    @click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
    @click.version_option(package_name="crmcore", prog_name="crm")
    @click.pass_context
    def cli(ctx: click.Context, /, **params: Any) -> None:
        """crmcore: the lead-to-customer lifecycle from the command line.

        \b
        Examples:
          crm init                              create the database (SQLite by default)
          crm lead capture --email ada@example.com --source google
          crm contact show ada@example.com --timeline
          crm --database-url postgresql://127.0.0.1/crm db upgrade
          crm --as rita@example.com contact list
        """
        if ctx.obj is None:
            ctx.obj = CLIState(params)
        else:
            ctx.obj.params.update(params)
        level = logging.INFO if params.get("trace") else logging.WARNING
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    from crmcore import demo
    from crmcore.cli import (
        bundles,
        capture,
        consent,
        contacts,
        database,
        jobs,
        plugins,
        reports,
        sales,
        scaffold,
        segments,
        users,
        web,
    )

    for module in (database, plugins, contacts, users, consent, segments, capture, sales, jobs, reports, bundles, web,
                   scaffold, demo):  # fmt: skip
        for command in module.COMMANDS:
            cli.add_command(command)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``crm`` script."""
    with startup_phase(freeze=True):
        cli = build_cli()
    cli.main(args=argv, prog_name="crm", auto_envvar_prefix=None, standalone_mode=True,
             windows_expand_args=False, obj=CLIState({}, own_process=True))  # fmt: skip
