"""The plugin manager: discovery, dependencies, validation, tracing and hook errors.

Each :class:`~crmcore.CRM` owns one :class:`PluginHost` wrapping its own
``pluggy.PluginManager``; nothing is global.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from operator import itemgetter
from typing import Any

import attrs
import pluggy

from crmcore.errors import ConfigError, CRMError, PluginError
from crmcore.hooks import SPEC_MODULES

log = logging.getLogger("crmcore.plugins")
trace_log = logging.getLogger("crmcore.hooks")

ENTRY_POINT_GROUP = "crmcore"
CORE_PLUGIN = "core"


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What a plugin module declares about itself as ``plugin_info``.

    ``requires`` names plugins that must be enabled too; ``hookspecs`` are
    modules or classes of hook specifications the plugin publishes for others.
    """

    #: The plugin's name when it is registered as an object rather than by entry point.
    name: str | None = None
    requires: tuple[str, ...] = ()
    hookspecs: tuple[object, ...] = ()


@attrs.define(kw_only=True)
class LoadedPlugin:
    """A plugin as the host sees it: found, enabled, registered or broken."""

    name: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    enabled: bool = False
    module: object | None = None
    error: str | None = None
    requires: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``enabled``, ``disabled`` or ``broken``."""
        if self.error:
            return "broken"
        return "enabled" if self.enabled else "disabled"


class _Manager(pluggy.PluginManager):
    """pluggy's manager, counting the changes that alter how a hook is called.

    Every registration, unregistration, new specification and added or
    removed call monitor adds one to :attr:`generation`, so a
    :class:`PluginHost` knows when a call plan it made is out of date.
    """

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.generation = 0
        # The executor pluggy starts with; a monitor replaces it (unknown pluggy: never matches).
        self._plain_hookexec = getattr(self, "_inner_hookexec", object())

    @property
    def monitored(self) -> bool:
        """True while a call monitor (tracing, ``hook_calls``) wraps every hook call."""
        return getattr(self, "_inner_hookexec", None) is not self._plain_hookexec

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        try:
            return super().register(plugin, name)
        finally:
            self.generation += 1

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1

    def add_hookspecs(self, module_or_class: Any) -> None:
        try:
            super().add_hookspecs(module_or_class)
        finally:
            self.generation += 1

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        undo = super().add_hookcall_monitoring(before, after)
        self.generation += 1

        def undo_and_count() -> None:
            undo()
            self.generation += 1

        return undo_and_count


@attrs.frozen
class _Plan:
    """How to call one hook without pluggy's general loop; ``impls`` None: through pluggy.

    ``impls`` holds each implementation's function, a getter of its
    arguments from the call's keywords and its plugin's name, in pluggy's
    calling order (the reverse of its list: tryfirst, then the last
    registered first, trylast at the end).
    """

    generation: int
    impls: tuple[tuple[Callable[..., Any], Callable[[Mapping[str, Any]], tuple[Any, ...]], str], ...] | None
    needed: frozenset[str] = frozenset()
    firstresult: bool = False


def _no_args(kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    return ()


def _args_getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not names:
        return _no_args
    if len(names) == 1:
        name = names[0]
        return lambda kwargs: (kwargs[name],)
    return itemgetter(*names)


def installed_entry_points() -> dict[str, EntryPoint]:
    """Return the installed plugins' entry points by plugin name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


class PluginHost:
    """Loads plugins into a private pluggy manager and calls hooks on them."""

    def __init__(
        self,
        enabled: Sequence[str | object] | None = None,
        *,
        trace: bool = False,
        tolerant: bool = False,
        entry_points_by_name: Mapping[str, EntryPoint] | None = None,
    ) -> None:
        self.pm = _Manager(ENTRY_POINT_GROUP)
        self.plugins: dict[str, LoadedPlugin] = {}
        self._culprits: dict[str, tuple[int, dict[types.CodeType, str]]] = {}
        self._plans: dict[str, _Plan] = {}
        for module_name in SPEC_MODULES:
            self.pm.add_hookspecs(importlib.import_module(module_name))
        self._load(enabled, tolerant, entry_points_by_name)
        if trace:
            self.pm.add_hookcall_monitoring(*self._tracer())

    # -- loading ---------------------------------------------------------------

    def _load(
        self,
        enabled: Sequence[str | object] | None,
        tolerant: bool,
        eps: Mapping[str, EntryPoint] | None,
    ) -> None:
        eps = installed_entry_points() if eps is None else eps
        for name, ep in eps.items():
            self.plugins[name] = LoadedPlugin(
                name=name,
                distribution=ep.dist.name if ep.dist else None,
                version=ep.dist.version if ep.dist else None,
                entry_point=f"{ep.name} = {ep.value}",
            )
        wanted: list[tuple[str, object | None]] = []
        for item in eps if enabled is None else enabled:
            if isinstance(item, str):
                if item not in eps:
                    known = ", ".join(sorted(eps)) or "none"
                    raise ConfigError(f"unknown plugin {item!r}; installed plugins: {known}")
                wanted.append((item, None))
            else:
                wanted.append((_object_name(item), item))
        modules: dict[str, object] = {}
        seen: set[str] = set()
        for name, _obj in wanted:
            if name in seen:
                raise ConfigError(
                    f"two enabled plugins are named {name!r}: name each one "
                    f"(plugin_info = PluginInfo(name=...)) or enable it once"
                )
            seen.add(name)
        for name, obj in wanted:
            record = self.plugins.setdefault(name, LoadedPlugin(name=name))
            record.enabled = True
            if obj is None:
                try:
                    obj = eps[name].load()
                except Exception as exc:
                    record.error = f"{type(exc).__name__}: {exc}"
                    if tolerant:
                        continue
                    raise PluginError(
                        f"failed to load (distribution {record.distribution}, "
                        f"entry point '{record.entry_point}'): {record.error}",
                        plugin=name,
                    ) from exc
            info = getattr(obj, "plugin_info", None) or PluginInfo()
            record.module, record.requires = obj, tuple(info.requires)
            modules[name] = obj
            for spec in info.hookspecs:
                self.pm.add_hookspecs(spec)
        for name in modules:
            missing = [dep for dep in self.plugins[name].requires if dep not in modules]
            if missing:
                message = f"requires plugin(s) {', '.join(missing)}, which are not enabled"
                if tolerant:
                    self.plugins[name].error = message
                    continue
                raise ConfigError(f"plugin {name!r} {message}")
        from crmcore import builtin

        self._register(CORE_PLUGIN, builtin, tolerant)
        for name in _dependency_order(modules, self.plugins):
            if self.plugins[name].error is None:
                self._register(name, modules[name], tolerant)

    def _register(self, name: str, obj: object, tolerant: bool) -> None:
        try:
            self.pm.register(obj, name=name)
            self._check_specs(name, obj)
        except (pluggy.PluginValidationError, PluginError) as exc:
            if self.pm.is_registered(obj):
                self.pm.unregister(obj)
            if name in self.plugins:
                self.plugins[name].error = str(exc)
            if tolerant:
                return
            if isinstance(exc, PluginError):
                raise
            raise PluginError(str(exc), plugin=name) from exc

    def _check_specs(self, name: str, obj: object) -> None:
        for caller in self.pm.get_hookcallers(obj) or ():
            if caller.spec is not None:
                continue
            impl = next(i for i in caller.get_hookimpls() if i.plugin is obj)
            if impl.opts.get("optionalhook"):
                continue
            known = [n for n in dir(self.pm.hook) if n.startswith("crm_") and getattr(self.pm.hook, n).spec]
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise PluginError(
                f"implements {caller.name}, which no hook specification declares{hint}",
                plugin=name,
                hook=caller.name,
            )

    # -- calling ---------------------------------------------------------------

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call hook *hook_name*; errors are re-raised naming the plugin and hook.

        A :class:`~crmcore.errors.CRMError` (a veto) keeps its class and gains
        ``plugin`` and ``hook`` attributes; anything else becomes a
        :class:`~crmcore.errors.PluginError` raised from the original.

        The implementations are called as pluggy calls them (same order,
        arguments, results, ``firstresult`` and exceptions), from a plan made
        once per hook and remade whenever a plugin, a specification or a call
        monitor comes or goes. Hooks with wrappers, historic hooks,
        specifications with argument defaults, implementations with
        keyword arguments, a call missing an argument and monitored calls
        (tracing) go through pluggy itself.
        """
        plan = self._plans.get(hook_name)
        if plan is None or plan.generation != self.pm.generation:
            plan = self._plan(hook_name)
        culprit = None  # the plugin whose implementation is running (on the planned path)
        try:
            impls = plan.impls
            if impls is None or not kwargs.keys() >= plan.needed:
                return getattr(self.pm.hook, hook_name)(**kwargs)
            if plan.firstresult:
                for function, arguments, culprit in impls:  # noqa: B007 (read by the handlers below)
                    result = function(*arguments(kwargs))
                    if result is not None:
                        return result
                return None
            results = []
            for function, arguments, culprit in impls:  # noqa: B007 (read by the handlers below)
                result = function(*arguments(kwargs))
                if result is not None:
                    results.append(result)
            return results
        except CRMError as exc:
            if exc.plugin is None:
                exc.plugin, exc.hook = culprit or self._culprit(hook_name, exc), hook_name
            raise
        except Exception as exc:
            plugin = culprit or self._culprit(hook_name, exc)
            raise PluginError(f"{type(exc).__name__}: {exc}", plugin=plugin, hook=hook_name) from exc

    def _plan(self, hook_name: str) -> _Plan:
        """The calling plan of *hook_name* for the manager's current generation (see :meth:`call`)."""
        pm = self.pm
        generation = pm.generation
        caller = getattr(pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        impls = caller.get_hookimpls() if caller is not None else []
        if (
            caller is None
            or pm.monitored
            or caller.is_historic()
            or (spec is not None and getattr(spec, "kwargdefaults", None))
            or any(impl.hookwrapper or impl.wrapper or impl.kwargnames for impl in impls)
        ):
            plan = _Plan(generation, None)
        else:
            needed = {name for impl in impls for name in impl.argnames}
            if spec is not None:
                needed.update(spec.argnames)
            plan = _Plan(
                generation,
                tuple((impl.function, _args_getter(impl.argnames), impl.plugin_name) for impl in reversed(impls)),
                frozenset(needed),
                bool(spec is not None and spec.opts.get("firstresult", False)),
            )
        self._plans[hook_name] = plan
        return plan

    def collect(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a collector hook and flatten the lists its implementations return."""
        results: list[Any] = []
        for answer in self.call(hook_name, **kwargs):
            if isinstance(answer, list | tuple):
                results.extend(answer)
            elif answer is not None:
                results.append(answer)
        return results

    def collect_by_plugin(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of a collector hook, pairing each answer with its plugin."""
        caller = getattr(self.pm.hook, hook_name)
        answers = []
        for impl in reversed(caller.get_hookimpls()):
            try:
                answer = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except CRMError as exc:
                if exc.plugin is None:
                    exc.plugin, exc.hook = impl.plugin_name, hook_name
                raise
            except Exception as exc:
                raise PluginError(f"{type(exc).__name__}: {exc}", plugin=impl.plugin_name, hook=hook_name) from exc
            if answer is not None:
                answers.append((impl.plugin_name, answer))
        return answers

    def _culprit(self, hook_name: str, exc: BaseException) -> str | None:
        """Find which plugin's implementation raised, from the traceback's frames."""
        generation, codes = self._culprits.get(hook_name, (None, {}))
        if generation != self.pm.generation:  # made again when plugins come or go
            codes = {}
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                function = inspect.unwrap(impl.function)
                code = getattr(function, "__code__", None)
                if code is not None:
                    codes[code] = impl.plugin_name
            self._culprits[hook_name] = (self.pm.generation, codes)
        tb = exc.__traceback__
        while tb is not None:
            plugin = codes.get(tb.tb_frame.f_code)
            if plugin is not None:
                return plugin
            tb = tb.tb_next
        return None

    def _tracer(self) -> tuple[Any, Any]:
        starts: list[float] = []

        def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            starts.append(time.perf_counter())

        def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Any) -> None:
            elapsed = (time.perf_counter() - starts.pop()) * 1000
            names = ",".join(i.plugin_name for i in reversed(impls)) or "-"
            failed = " FAILED" if outcome.exception is not None else ""
            trace_log.info("hook %s [%s] %.3f ms%s", hook_name, names, elapsed, failed)

        return before, after

    # -- introspection ---------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Names of the registered plugins (the core included as ``core``)."""
        return [name for name, _ in self.pm.list_name_plugin() if name is not None]

    def is_enabled(self, name: str) -> bool:
        """True when plugin *name* is registered in this host."""
        return self.pm.has_plugin(name)

    def hooks_of(self, name: str) -> list[str]:
        """The hooks plugin *name* implements."""
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            return []
        return sorted(c.name for c in self.pm.get_hookcallers(plugin) or ())


def _object_name(obj: object) -> str:
    info = getattr(obj, "plugin_info", None)
    name = getattr(info, "name", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__name__
    return name.rpartition(".")[2]


def _dependency_order(modules: Mapping[str, object], plugins: Mapping[str, LoadedPlugin]) -> list[str]:
    """Order plugins so each comes after the plugins it requires."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: Iterable[str]) -> None:
        if name in seen or name not in modules:
            return
        if name in path:
            raise ConfigError(f"plugin dependency cycle: {' -> '.join([*path, name])}")
        for dep in plugins[name].requires:
            visit(dep, [*path, name])
        seen.add(name)
        ordered.append(name)

    for name in sorted(modules):
        visit(name, [])
    return ordered
