"""The examples of docs/plugins/surveys.md run, top to bottom, as one session."""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "surveys.md"


def test_the_guide_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {"__name__": "surveys_guide"}
    try:
        for index, block in enumerate(blocks):
            exec(compile(block, f"{GUIDE.name} block {index + 1}", "exec"), namespace)
    finally:
        crm = namespace.get("crm")
        if crm is not None:
            crm.dispose()  # type: ignore[attr-defined]
