"""Schema migrations: one Alembic environment, the core and each plugin a branch.

``crm db upgrade`` runs every enabled branch to head; ``crm db upgrade NAME``
runs one (``NAME@head``). Alembic is imported only here, so ordinary CLI
commands never pay for it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmcore.errors import ConfigError
from crmcore.plugins import CORE_PLUGIN

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

    from crmcore.crm import CRM

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def include_object_for(owners: set[str], all_plugins: list[str]) -> Any:
    """Alembic's ``include_object`` filter: only the core's and enabled plugins' tables.

    Objects declared with :func:`crmcore.db.unmanaged` are left out.
    """
    from crmcore.db import is_unmanaged, table_owner

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if is_unmanaged(name) or is_unmanaged(getattr(getattr(obj, "table", None), "name", None)):
            return False
        if type_ == "table" and name is not None:
            return name != "alembic_version" and table_owner(name, all_plugins) in owners
        table = getattr(obj, "table", None)
        return table is None or table_owner(table.name, all_plugins) in owners

    return include


def _owners(crm: CRM) -> list[str]:
    return [CORE_PLUGIN, *[n for n in crm.plugins.names if n != CORE_PLUGIN]]


def alembic_config(crm: CRM, connection: Connection | None = None) -> Config:
    """An Alembic config for *crm*: the core's and every enabled plugin's version folders."""
    from alembic.config import Config

    crm.plugins.call("crm_register_models")  # every enabled plugin's tables on Base.metadata
    locations: list[str] = []
    for group in crm.plugins.call("crm_register_migrations"):
        locations.extend(str(p) for p in group)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.attributes.update(
        crm=crm,
        connection=connection,
        owners=_owners(crm),
        all_plugins=sorted(set(crm.plugins.plugins) | set(_owners(crm)) - {CORE_PLUGIN}),
    )
    return config


@contextmanager
def _connected(crm: CRM) -> Iterator[Config]:
    from sqlalchemy import exc

    try:
        with crm.engine.begin() as connection:
            yield alembic_config(crm, connection)
    except exc.OperationalError as error:
        url = crm.engine.url.render_as_string(hide_password=True)
        raise ConfigError(f"cannot reach the database {url}: {error.orig}") from error


def upgrade(crm: CRM, target: str | None = None) -> list[str]:
    """Bring the schema to head (all branches, or one plugin's); return revisions applied."""
    from alembic import command

    before = set(current(crm))
    if target is not None and target not in _owners(crm):
        raise ConfigError(f"unknown branch {target!r}; branches: {', '.join(_owners(crm))}")
    with _connected(crm) as config:
        command.upgrade(config, "heads" if target is None else f"{target}@head")
    after = set(current(crm))
    crm.custom_fields.sync_from_plugins()
    return sorted(after - before)


def current(crm: CRM) -> list[str]:
    """Revisions the database is at (one per branch)."""
    from alembic.runtime.migration import MigrationContext

    with _connected(crm) as config:
        return sorted(MigrationContext.configure(config.attributes["connection"]).get_current_heads())


def status(crm: CRM) -> list[dict[str, Any]]:
    """Per branch (the core, then each enabled plugin): applied revision, head, up to date."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(crm))
    at = current(crm)
    applied = {rev.revision for rev in script.iterate_revisions(tuple(at), "base") if rev} if at else set()
    walk = list(script.walk_revisions())
    rows = []
    for label in _owners(crm):
        members = [rev.revision for rev in walk if label in rev.branch_labels]
        if not members:
            continue
        current_rev = next((rev for rev in members if rev in applied), None)
        rows.append({"branch": label, "current": current_rev, "head": members[0],
                     "up_to_date": current_rev == members[0]})  # fmt: skip
    return rows


def branch_heads(crm: CRM, label: str) -> list[str]:
    """The head revisions of branch *label* (a healthy branch has exactly one)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(crm))
    members = {rev.revision: rev for rev in script.walk_revisions() if label in rev.branch_labels}
    children: set[str] = set()
    for rev in members.values():
        down = rev.down_revision
        children.update((down,) if isinstance(down, str) else down or ())
    return sorted(name for name in members if name not in children)


def schema_diff(crm: CRM) -> list[Any]:
    """Differences between the migrated database and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from crmcore.db import Base

    with _connected(crm) as config:
        env = config.attributes
        include = include_object_for(set(env["owners"]), env["all_plugins"])
        context = MigrationContext.configure(env["connection"], opts={"include_object": include, "compare_type": True})
        with warnings.catch_warnings():  # SQLite cannot reflect expression indexes; unmanaged ones are left out anyway
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
            return list(compare_metadata(context, Base.metadata))
