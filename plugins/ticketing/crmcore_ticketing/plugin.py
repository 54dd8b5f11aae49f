"""The ticketing plugin's hook implementations (entry point ``ticketing``)."""

from __future__ import annotations

from pathlib import Path

from crmcore import hookimpl
from crmcore.plugins import PluginInfo

HERE = Path(__file__).resolve().parent
plugin_info = PluginInfo()


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``ticketing``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``ticketing/``."""
    return [HERE / "templates"]
