"""Helpers behind the fixtures: hook call recording and CLI invocation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from click.testing import Result

    from crmcore.crm import CRM


@attrs.frozen
class HookCall:
    """One recorded hook call."""

    name: str
    kwargs: dict[str, Any]
    plugins: tuple[str, ...]


class HookCalls:
    """Records every hook call of a CRM (pluggy's ``add_hookcall_monitoring``)."""

    def __init__(self, crm: CRM) -> None:
        self.calls: list[HookCall] = []

        def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            self.calls.append(HookCall(hook_name, dict(kwargs), tuple(i.plugin_name for i in impls)))

        def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            pass

        self._undo = crm.plugins.pm.add_hookcall_monitoring(before, after)

    def names(self) -> list[str]:
        """Names of the hooks called, in order."""
        return [call.name for call in self.calls]

    def of(self, name: str) -> list[dict[str, Any]]:
        """The keyword arguments of every call of hook *name*."""
        return [call.kwargs for call in self.calls if call.name == name]

    def clear(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    def close(self) -> None:
        """Stop recording."""
        self._undo()


def run_cli(crm: CRM, args: Sequence[str], input: str | None = None) -> Result:
    """Run ``crm ARGS`` against *crm* (same database, plugins and clock) and return the result."""
    from click.testing import CliRunner

    from crmcore.cli import CLIState, build_cli

    state = CLIState({})
    state._crm = crm
    return CliRunner().invoke(build_cli(), list(args), obj=state, input=input, catch_exceptions=False)
