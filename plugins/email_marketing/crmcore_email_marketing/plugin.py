"""The email_marketing plugin's hook implementations (entry point ``email_marketing``)."""

from __future__ import annotations

from pathlib import Path

from crmcore import hookimpl
from crmcore.plugins import PluginInfo

HERE = Path(__file__).resolve().parent
plugin_info = PluginInfo()


@hookimpl
def crm_register_migrations() -> list[Path]:
    """The plugin's own Alembic branch, ``email_marketing``."""
    return [HERE / "migrations"]


@hookimpl
def crm_register_templates() -> list[Path]:
    """Templates under ``email_marketing/``."""
    return [HERE / "templates"]
