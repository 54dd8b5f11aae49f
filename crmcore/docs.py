"""Generate the reference pages from the code: hooks from hookspec docstrings, CLI from click.

``python -m crmcore.docs`` rewrites ``docs/hooks.md`` and ``docs/cli.md``; a
test fails when either is stale, so the reference is never written twice.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from crmcore.hooks import SPEC_MODULES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def hookspecs(module: Any) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Every hook specification of *module* (or class) with its options, in source order."""
    items = []
    for name, func in vars(module).items():
        opts = getattr(func, "crmcore_spec", None)
        if name.startswith("crm_") and opts is not None:
            items.append((inspect.getsourcelines(func)[1], name, func, opts))
    for _line, name, func, opts in sorted(items):
        yield name, func, opts


def _signature(func: Any) -> str:
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.name != "self"]
    text = ", ".join(f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
                     for p in params)  # fmt: skip
    returns = signature.return_annotation
    return f"({text}) -> {returns}" if returns is not inspect.Signature.empty else f"({text})"


def hooks_markdown(extra_modules: list[Any] | None = None) -> str:
    """The hook reference as Markdown."""
    lines = [
        "# Hook reference",
        "",
        "Generated from the hook specifications' docstrings by `python -m crmcore.docs`;",
        "do not edit by hand. Implement a hook with `@crmcore.hookimpl`.",
        "",
    ]
    modules = [importlib.import_module(name) for name in SPEC_MODULES] + list(extra_modules or [])
    for module in modules:
        title = (module.__doc__ or module.__name__).strip().splitlines()[0]
        lines += [f"## {module.__name__}", "", title, ""]
        for name, func, opts in hookspecs(module):
            kind = []
            if opts.get("firstresult"):
                kind.append("firstresult")
            if opts.get("warn_on_impl"):
                kind.append("deprecated")
            suffix = f" *({', '.join(kind)})*" if kind else ""
            lines += [f"### `{name}`{suffix}", "", f"```python\n{name}{_signature(func)}\n```", ""]
            lines += [inspect.cleandoc(func.__doc__ or "").replace(".. versionadded::", "*Added in*"), ""]
    return "\n".join(lines).rstrip() + "\n"


def cli_markdown() -> str:
    """The CLI reference as Markdown, from the click commands' help."""
    from crmcore.cli import build_cli
    from crmcore.crm import CRM

    root = build_cli()
    CRM(database_url="sqlite://", environment="test").plugins.call("crm_register_commands", cli=root)
    lines = ["# CLI reference", "", "Generated from the commands' help by `python -m crmcore.docs`.", ""]

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        # The root's context settings (``-h`` for help) apply as they do when ``crm`` runs, so the
        # reference shows what users see, whatever ran before in this process (click caches the option).
        settings = command.context_settings if parent is None else {}
        ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
        lines.extend([f"## `{' '.join(path)}`", "", "```text", command.get_help(ctx), "```", ""])
        if isinstance(command, click.Group):
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name], ctx)

    walk(root, ["crm"], None)
    return "\n".join(lines).rstrip() + "\n"


def plugin_spec_modules() -> list[Any]:
    """Hook specifications that installed plugins publish (``plugin_info.hookspecs``)."""
    from crmcore.crm import CRM

    crm = CRM(database_url="sqlite://", environment="test")
    modules: list[Any] = []
    for name in sorted(crm.plugins.plugins):
        info = getattr(crm.plugins.plugins[name].module, "plugin_info", None)
        modules.extend(getattr(info, "hookspecs", ()))
    return modules


def main() -> None:
    """Rewrite the generated pages."""
    DOCS.mkdir(exist_ok=True)
    (DOCS / "hooks.md").write_text(hooks_markdown(plugin_spec_modules()), encoding="utf-8")
    (DOCS / "cli.md").write_text(cli_markdown(), encoding="utf-8")
    print("wrote docs/hooks.md and docs/cli.md", file=sys.stderr)


if __name__ == "__main__":
    main()
