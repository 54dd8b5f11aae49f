"""`crm plugin new`: the generated plugin installs, is discovered, and its own tests pass."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from crmcore.errors import Conflict, ValidationError
from crmcore.scaffold import generate


@pytest.mark.parametrize("name", ["Loyalty", "1st", "class", "a", "with-dash", "x" * 41, "trailing_"])
def test_bad_names_are_refused(name, tmp_path):
    with pytest.raises(ValidationError):
        generate(name, tmp_path / "out")


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(Conflict):
        generate("loyalty", tmp_path / "out")


@pytest.mark.slow
def test_generated_plugin_installs_is_discovered_and_passes_its_tests(tmp_path):
    from click.testing import CliRunner

    from crmcore.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["plugin", "new", "loyalty", "-d", str(tmp_path / "crmcore-loyalty")])
    assert result.exit_code == 0, result.output
    # A fresh venv that sees this environment's packages (crmcore and its dependencies) but
    # installs the generated distribution into itself only.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    parent = sysconfig.get_paths()["purelib"]
    Path(site, "_crmcore_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e",
                              str(tmp_path / "crmcore-loyalty")], capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    found = subprocess.run([str(python), "-c", "from crmcore.plugins import installed_entry_points as e; "
                            "print(e()['loyalty'].value)"], capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.strip() == "crmcore_loyalty.plugin"
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=tmp_path / "crmcore-loyalty", capture_output=True, text=True)  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout and "skipped" not in tests.stdout
