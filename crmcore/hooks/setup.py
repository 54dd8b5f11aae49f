"""Registration hooks: called once when a CRM starts, to collect what plugins provide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    from crmcore.crm import CRM
    from crmcore.registry import CustomFieldSpec, PermissionSpec, SettingSpec


@hookspec
def crm_register_settings() -> list[SettingSpec]:
    """Declare the settings a plugin reads, with defaults, types and help.

    Called once at start-up. Values come from ``[plugins.<name>]`` in ``crm.toml``,
    ``CRMCORE_<NAME>__<KEY>`` variables or ``CRM(plugin_settings=...)``, and are
    read with ``crm.plugin_setting(name, key)``. An unknown key for a plugin is a
    start-up error.

    :returns: A list of :class:`~crmcore.registry.SettingSpec`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_custom_fields() -> list[CustomFieldSpec]:
    """Declare custom fields on contacts or organizations.

    Called by ``crm db upgrade`` and ``crm init``, which store the declarations
    (idempotently) so that values are validated on every write and queryable in
    segments and reports.

    :returns: A list of :class:`~crmcore.registry.CustomFieldSpec`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_models() -> list[ModuleType]:
    """Import the modules that declare the plugin's tables, and return them.

    Called before migrations run or the schema is compared with the models
    (``crm db upgrade``, ``crm db status``), when every enabled plugin's tables
    must be on :class:`crmcore.db.Base`. Import the models here, not at the top
    of the entry-point module, so that commands which never touch the plugin's
    tables start without declaring them (code that uses the models imports
    them as usual). A plugin whose entry-point module imports its models may
    leave this hook out. All implementations run, outside any transaction.

    :returns: A list of modules.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_migrations() -> list[Path]:
    """Give the folders holding the plugin's Alembic revisions.

    A plugin's tables live on :class:`crmcore.db.Base` with its name as prefix;
    its revisions form their own branch labelled with its name, whose first
    revision ``depends_on`` the core revision it needs. ``crm db upgrade``
    brings the core and every enabled plugin to head.

    :returns: A list of directories.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_templates() -> list[Path]:
    """Give template folders for the shared Jinja2 environment.

    Each folder holds a subfolder named after the plugin (``ticketing/reply.txt``).
    Folders returned by implementations marked ``tryfirst=True`` (bundles) come
    first in the search path, so they override the plugins' templates; the host's
    ``template_dirs`` come before all.

    :returns: A list of directories.

    .. versionadded:: 0.1
    """


@hookspec
def crm_startup(crm: CRM) -> None:
    """The CRM is constructed and every plugin is registered.

    Use it to validate the plugin's settings or warm a cache. Runs outside any
    transaction; raising stops start-up with a :class:`~crmcore.errors.PluginError`.
    All implementations run; return values are ignored.

    :param crm: The CRM that started.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_permissions() -> list[PermissionSpec]:
    """Declare the permissions a plugin checks, with the built-in roles that hold them.

    Called once at start-up (collector: every plugin answers, the lists are
    joined). Check them with ``crmcore.permissions.require(ctx, name)`` in a
    service; the console hides what the signed-in user's role does not grant.
    A permission named twice is a start-up error.

    :returns: A list of :class:`~crmcore.registry.PermissionSpec`.

    .. versionadded:: 0.1
    """
