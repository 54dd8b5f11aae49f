"""The core's models load by submodule, on first use (``crmcore.models``).

A command maps only the tables it uses; whatever it maps, a flush must still
find every table its rows point to by foreign key.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from importlib.util import find_spec

import pytest

from crmcore import models
from crmcore.db import Base

#: The installed plugins' model modules (every plugin keeps its tables in ``<package>.models``).
PLUGIN_MODEL_MODULES = sorted(
    name
    for ep in entry_points(group="crmcore")
    if find_spec(name := f"{ep.value.partition('.')[0]}.models") is not None
)


def test_the_index_names_every_class_and_table_of_each_submodule():
    for submodule, (names, tables) in models.SUBMODULES.items():
        module = models.load(submodule)
        mapped = {
            cls.__name__: cls.__tablename__
            for cls in vars(module).values()
            if isinstance(cls, type) and issubclass(cls, Base) and cls.__module__ == module.__name__
        }
        assert set(mapped) <= set(names), submodule
        assert sorted(mapped.values()) == sorted(tables), submodule
        for name in names:
            assert getattr(models, name) is getattr(module, name)
    core_tables = {t for _, tables in models.SUBMODULES.values() for t in tables}
    assert core_tables == {
        t.name for t in Base.metadata.tables.values() if not any(t.name.startswith(p) for p in _plugin_prefixes())
    }


def _plugin_prefixes() -> tuple[str, ...]:
    return tuple(f"{ep.name}_" for ep in entry_points(group="crmcore"))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="Contacts"):
        models.Contacts  # noqa: B018


@pytest.mark.parametrize(
    "module", [f"crmcore.models.{name}" for name in models.SUBMODULES] + PLUGIN_MODEL_MODULES
)
def test_a_module_loaded_alone_brings_the_tables_its_foreign_keys_point_to(module):
    """In a fresh process: map one module, configure, then every foreign key resolves and a flush can sort."""
    script = (
        "import importlib, sys\n"
        "from sqlalchemy.orm import configure_mappers\n"
        "from crmcore.db import Base\n"
        "importlib.import_module(sys.argv[1])\n"
        "before = set(Base.metadata.tables)\n"
        "configure_mappers()\n"
        "for table in Base.metadata.sorted_tables:\n"
        "    for fk in table.foreign_keys:\n"
        "        fk.column  # raises NoReferencedTableError when the target is not mapped\n"
        "print(len(before), len(Base.metadata.tables))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, module], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = map(int, result.stdout.split())
    assert after >= before > 0


def test_contact_show_maps_only_the_tables_it_needs(tmp_path):
    """``crm contact show`` in a fresh process leaves the capture and consent tables unmapped."""
    from crmcore import CRM

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = CRM(database_url=url, environment="test")
    crm.db_upgrade()
    crm.leads.capture(email="ada@example.com")
    crm.dispose()
    script = (
        "import sys\n"
        "from crmcore.cli import main\n"
        "try:\n"
        "    main(['--database-url', sys.argv[1], 'contact', 'show', 'ada@example.com'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.startswith('crmcore.models.')), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ada@example.com" in result.stdout
    loaded = result.stderr.strip().splitlines()[-1]
    assert "crmcore.models.people" in loaded
    assert "crmcore.models.capture" not in loaded and "crmcore.models.privacy" not in loaded
