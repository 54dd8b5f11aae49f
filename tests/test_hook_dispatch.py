"""``PluginHost.call`` calls implementations exactly as pluggy does, from a plan it remakes on every change.

Each test makes the same call through ``PluginHost.call`` and through pluggy's
own hook caller on the same manager, and compares what was called, in which
order, with which arguments, and what came back or was raised.
"""

from __future__ import annotations

import warnings
from typing import Any

import pluggy
import pytest

from crmcore import hookimpl
from crmcore.errors import PluginError, ValidationError
from crmcore.hooks import hookspec
from crmcore.plugins import PluginHost, PluginInfo


class Spec:
    @hookspec
    def crm_test_event(self, event: Any, ctx: Any) -> None:
        """Every implementation runs."""

    @hookspec(firstresult=True)
    def crm_test_decide(self, event: Any, ctx: Any) -> Any:
        """The first answer wins."""

    @hookspec(historic=True)
    def crm_test_history(self, event: Any, ctx: Any) -> None:
        """Replayed for plugins registered later."""


def plugin(name: str, log: list[Any], answer: Any = None, *, raises: BaseException | None = None, **opts: Any) -> Any:
    """A plugin *name* implementing both test hooks: logs its call, then raises or answers."""

    def impl(self: Any, event: Any, ctx: Any) -> Any:
        log.append((name, event, ctx))
        if raises is not None:
            raise raises
        return answer

    attributes = {
        "crm_test_event": hookimpl(**opts)(impl),
        "crm_test_decide": hookimpl(**opts)(impl),
        "plugin_info": PluginInfo(name=name),
    }
    return type(name, (), attributes)()


def host_with(*plugins: Any) -> PluginHost:
    """A host with the test specs; the plugins register in name order (the host sorts them)."""
    spec_holder = type("SpecHolder", (), {"plugin_info": PluginInfo(name="spec_holder", hookspecs=(Spec,))})()
    return PluginHost([spec_holder, *plugins])


def both(host: PluginHost, log: list[Any], hook: str, **kwargs: Any) -> tuple[Any, Any]:
    """(result or error, calls) through PluginHost.call, then the same through pluggy."""
    outcomes = []
    for call in (lambda: host.call(hook, **kwargs), lambda: getattr(host.pm.hook, hook)(**kwargs)):
        log.clear()
        try:
            outcome: Any = ("returned", call())
        except BaseException as exc:  # compared below
            outcome = ("raised", exc)
        outcomes.append((outcome, list(log)))
    return outcomes[0], outcomes[1]


def test_order_arguments_and_results_match_pluggy():
    log: list[Any] = []
    host = host_with(
        plugin("plain1", log, 1),
        plugin("last", log, "l", trylast=True),
        plugin("first", log, "f", tryfirst=True),
        plugin("silent", log, None),
        plugin("plain2", log, 2),
    )
    fast, slow = both(host, log, "crm_test_event", event="e", ctx="c")
    assert fast == slow
    assert fast[0] == ("returned", ["f", 2, 1, "l"])  # tryfirst, last registered first, trylast; None left out
    assert fast[1] == [(name, "e", "c") for name in ("first", "silent", "plain2", "plain1", "last")]


def test_firstresult_stops_at_the_first_answer_like_pluggy():
    log: list[Any] = []
    host = host_with(plugin("a", log, "a"), plugin("b", log, None), plugin("c", log, 0))
    fast, slow = both(host, log, "crm_test_decide", event=1, ctx=2)
    assert fast == slow == (("returned", 0), [("c", 1, 2)])  # 0 is an answer; a and b never run
    host = host_with(plugin("a", log, None), plugin("b", log, None))
    fast, slow = both(host, log, "crm_test_decide", event=1, ctx=2)
    assert fast == slow == (("returned", None), [("b", 1, 2), ("a", 1, 2)])


def test_an_exception_stops_the_loop_and_names_the_plugin():
    log: list[Any] = []
    host = host_with(plugin("a_never", log), plugin("b_boom", log, raises=KeyError("x")), plugin("c_runs", log))
    (fast, fast_calls), (slow, slow_calls) = both(host, log, "crm_test_event", event=1, ctx=2)
    assert fast_calls == slow_calls == [("c_runs", 1, 2), ("b_boom", 1, 2)]
    assert isinstance(slow[1], KeyError)
    error = fast[1]
    assert isinstance(error, PluginError) and error.plugin == "b_boom" and error.hook == "crm_test_event"
    assert isinstance(error.__cause__, KeyError)


def test_a_veto_keeps_its_class_and_gains_plugin_and_hook():
    log: list[Any] = []
    host = host_with(plugin("ok", log), plugin("veto", log, raises=ValidationError({"email": "no"})))
    with pytest.raises(ValidationError) as info:
        host.call("crm_test_event", event=1, ctx=2)
    assert info.value.plugin == "veto" and info.value.hook == "crm_test_event"
    assert log == [("veto", 1, 2)]


def test_wrappers_go_through_pluggy():
    log: list[Any] = []

    class Wrapper:
        plugin_info = PluginInfo(name="wrapper")

        @hookimpl(wrapper=True)
        def crm_test_event(self, event: Any, ctx: Any) -> Any:
            log.append(("wrapper", event, ctx))
            result = yield
            return [*result, "wrapped"]

    host = host_with(plugin("a", log, "a"), Wrapper())
    fast, slow = both(host, log, "crm_test_event", event=1, ctx=2)
    assert fast == slow == (("returned", ["a", "wrapped"]), [("wrapper", 1, 2), ("a", 1, 2)])


def test_a_plugin_registered_during_a_call_runs_from_the_next_call_on():
    log: list[Any] = []
    late = plugin("late", log, "late")

    class Registrar:
        plugin_info = PluginInfo(name="registrar")

        def __init__(self, host_ref: list[PluginHost]) -> None:
            self.host_ref, self.done = host_ref, False

        @hookimpl
        def crm_test_event(self, event: Any, ctx: Any) -> Any:
            if not self.done:
                self.host_ref[0].pm.register(late, name="late")
                self.done = True
            return "registrar"

    ref: list[PluginHost] = []
    host = host_with(Registrar(ref))
    ref.append(host)
    assert host.call("crm_test_event", event=1, ctx=2) == ["registrar"]  # as pluggy: the call's list was copied
    assert host.call("crm_test_event", event=1, ctx=2) == ["late", "registrar"]
    host.pm.unregister(name="late")
    assert host.call("crm_test_event", event=1, ctx=2) == ["registrar"]
    host.pm.register(late, name="late")
    host.pm.set_blocked("registrar")
    assert host.call("crm_test_event", event=1, ctx=2) == ["late"]


def test_call_monitors_see_every_call_while_they_are_on():
    log: list[Any] = []
    host = host_with(plugin("a", log, "a"))
    seen: list[tuple[str, tuple[str, ...]]] = []
    host.call("crm_test_event", event=1, ctx=2)  # a plan exists before the monitor comes
    undo = host.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, tuple(i.plugin_name for i in impls))),
        lambda outcome, name, impls, kwargs: None,
    )
    assert host.call("crm_test_event", event=1, ctx=2) == ["a"]
    assert seen == [("crm_test_event", ("a",))]
    undo()
    assert host.call("crm_test_event", event=1, ctx=2) == ["a"]
    assert len(seen) == 1


def test_a_missing_argument_warns_and_fails_as_in_pluggy():
    log: list[Any] = []
    host = host_with(plugin("a", log, "a"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PluginError) as info:
            host.call("crm_test_event", event=1)
    assert isinstance(info.value.__cause__, pluggy.HookCallError)
    assert any("'ctx'" in str(w.message) for w in caught)
    assert log == []


def test_implementation_defaults_and_extra_arguments_follow_pluggy():
    log: list[Any] = []

    class Defaults:
        plugin_info = PluginInfo(name="defaults")

        @hookimpl
        def crm_test_event(self, event: Any, ctx: Any = "default") -> Any:
            log.append(("defaults", event, ctx))
            return ctx

    host = host_with(Defaults(), plugin("a", log, "a"))
    fast, slow = both(host, log, "crm_test_event", event=1, ctx=2, extra=3)
    assert fast == slow


def test_a_specification_added_later_changes_how_the_hook_is_called():
    log: list[Any] = []

    class Early:
        @hookimpl
        def crm_test_late_spec(self, event: Any) -> Any:
            log.append("early")
            return "early"

        @hookimpl
        def crm_test_late_spec2(self, event: Any) -> Any:
            return None

    class Other:
        @hookimpl
        def crm_test_late_spec(self, event: Any) -> Any:
            log.append("other")
            return "other"

    host = host_with()
    host.pm.register(Early(), name="early")
    host.pm.register(Other(), name="other")
    assert host.call("crm_test_late_spec", event=1) == ["other", "early"]

    class LateSpec:
        @hookspec(firstresult=True)
        def crm_test_late_spec(self, event: Any) -> Any:
            """Now a decision."""

    host.pm.add_hookspecs(LateSpec)
    log.clear()
    assert host.call("crm_test_late_spec", event=1) == "other"
    assert log == ["other"]


def test_historic_hooks_go_through_pluggy():
    host = host_with()
    with pytest.raises(PluginError) as info:
        host.call("crm_test_history", event=1, ctx=2)
    assert isinstance(info.value.__cause__, AssertionError)  # pluggy: use call_historic
