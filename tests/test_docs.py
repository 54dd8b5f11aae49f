"""The generated references are current, and every hook is documented as the contract requires."""

from __future__ import annotations

import importlib
import re

import pytest

from crmcore.docs import DOCS, cli_markdown, hooks_markdown, hookspecs, plugin_spec_modules
from crmcore.hooks import SPEC_MODULES


def all_specs():
    modules = [importlib.import_module(name) for name in SPEC_MODULES] + plugin_spec_modules()
    return [(name, func) for module in modules for name, func, _opts in hookspecs(module)]


@pytest.mark.parametrize(("name", "func"), all_specs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_hookspec_documents_its_contract(name, func):
    doc = " ".join((func.__doc__ or "").split())
    assert name.startswith("crm_")
    assert ".. versionadded::" in doc, f"{name} lacks .. versionadded::"
    params = [p for p in func.__code__.co_varnames[: func.__code__.co_argcount] if p != "self"]
    for param in params:
        assert f":param {param}:" in doc, f"{name} does not document {param}"
    assert re.search(r"return values are ignored|:returns:", doc), f"{name} does not say what it returns"


def test_hook_reference_is_generated_and_current():
    page = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert page == hooks_markdown(plugin_spec_modules()), "run `python -m crmcore.docs`"
    for name, _func in all_specs():
        assert f"### `{name}`" in page


def test_cli_reference_is_generated_and_current():
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == cli_markdown(), "run `python -m crmcore.docs`"
