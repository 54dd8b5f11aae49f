"""Every code example in docs/ runs: file blocks match their files, snippets execute.

A Python block whose first line is ``# file: PATH`` must equal that file (the
file itself is tested where it lives). Other Python blocks of a page run in
order, in one namespace, in a temporary working directory — unless the page
says ``<!-- examples run by tests/test_x.py -->``: then that test runs them
(with the data and assertions the page needs) and must exist. A block
starting with ``# doc-test: skip`` is shown only (say why next to it).
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
OWN_TEST = re.compile(r"<!-- examples run by (tests/\S+\.py|plugins/\S+\.py) -->")
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name not in {"hooks.md", "cli.md"})


def blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_examples(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = OWN_TEST.search(page.read_text(encoding="utf-8"))
    if own:
        assert (ROOT / own.group(1)).exists(), f"{page.name} names a test that does not exist"
    module = types.ModuleType(f"doc_{page.stem.replace('-', '_')}")  # a real module: SQLAlchemy resolves
    monkeypatch.setitem(sys.modules, module.__name__, module)       # annotations of classes through it
    namespace = module.__dict__
    for code in blocks(page):
        first, _, rest = code.partition("\n")
        if first.startswith("# doc-test: skip"):
            continue
        if first.startswith("# file: "):
            path = ROOT / first.removeprefix("# file: ").strip()
            assert path.read_text(encoding="utf-8") == rest, f"{page.name} shows an outdated copy of {path}"
            continue
        if own:
            continue
        exec(compile(code, f"{page.name}", "exec"), namespace)
