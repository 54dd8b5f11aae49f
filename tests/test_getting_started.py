"""docs/getting-started.md, followed to the letter: every command of the page, in order, in a fresh venv.

The one liberty: ``pip install crmcore crmcore-ticketing`` (a package index) is
replaced by a venv that sees this checkout's installed crmcore and plugins; every
other line runs as written, and each ``# prints X`` comment is checked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "getting-started.md"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)
#: Lines that set up the environment the test provides itself.
SETUP = ("python3 -m venv", ". .venv/bin/activate", "pip install crmcore ")

pytestmark = pytest.mark.slow


def steps() -> list[tuple[str, str]]:
    """The page's blocks in order: ``("sh", line)`` per command, ``("python", code)`` per snippet."""
    found: list[tuple[str, str]] = []
    for language, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        if language == "python":
            found.append(("python", code))
            continue
        found.extend(("sh", line) for line in code.splitlines() if line.strip())
    return found


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fresh venv seeing this environment's packages; what the page installs goes into it alone."""
    venv = tmp_path / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    parent = sysconfig.get_paths()["purelib"]
    Path(site, "_crmcore_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    script = venv / "bin" / "crm"  # what installing crmcore puts on the PATH
    script.write_text(f"#!{venv / 'bin' / 'python'}\nfrom crmcore.cli import main\nmain()\n")
    script.chmod(0o755)
    return venv


def test_the_getting_started_page_works_as_written(venv: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMCORE_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    cwd = tmp_path
    ran = 0
    for language, step in steps():
        if language == "python":
            result = subprocess.run([str(venv / "bin" / "python"), "-c", step], cwd=cwd, env=env,
                                    capture_output=True, text=True)  # fmt: skip
            assert result.returncode == 0, f"python snippet failed:\n{step}\n{result.stderr[-3000:]}"
            ran += 1
            continue
        command, _, comment = step.partition("#")
        command = command.strip()
        if not command or command.startswith(SETUP):
            continue
        if command.startswith("cd "):
            cwd = cwd / shlex.split(command)[1]
            continue
        result = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                                executable="/bin/bash")  # fmt: skip
        assert result.returncode == 0, f"`{command}` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        expected = re.match(r"\s*prints (.+)", comment)
        if expected:
            assert expected.group(1).strip() in result.stdout, f"`{command}` printed:\n{result.stdout}"
        ran += 1
    assert ran >= 9  # the page's commands and snippet all ran
