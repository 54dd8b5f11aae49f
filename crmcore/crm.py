"""The :class:`CRM` object: everything one CRM instance needs, and nothing global."""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, overload

from sqlalchemy import event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from crmcore.clock import Clock, SystemClock
from crmcore.context import SYSTEM, Actor, HookContext
from crmcore.db import create_engine
from crmcore.errors import ConfigError, CRMError, DatabaseUnavailable, NotFound, PluginError
from crmcore.metadata import MetadataCache
from crmcore.plugins import PluginHost
from crmcore.registry import SettingSpec
from crmcore.settings import Settings

if TYPE_CHECKING:
    import jinja2
    import jinja2.sandbox
    from starlette.applications import Starlette

    from crmcore.attribution import AffiliateService, ConversionService
    from crmcore.bundles import BundleService
    from crmcore.forms import FormService
    from crmcore.jobs import Jobs
    from crmcore.links import LinkService
    from crmcore.mail import Mailer
    from crmcore.models import User
    from crmcore.reports.service import ReportService
    from crmcore.services.consent import ConsentService
    from crmcore.services.contacts import ContactService, CustomFieldService, ProductService
    from crmcore.services.customers import CustomerService
    from crmcore.services.leads import InteractionService, LeadService, TouchpointService
    from crmcore.services.sales import SalesService
    from crmcore.services.segments import SegmentService
    from crmcore.services.users import RoleService, UserService
    from crmcore.signing import Signer

log = logging.getLogger("crmcore")

#: What a service accepts as the acting user.
ActorLike: TypeAlias = "Actor | int | str | User | None"
ServiceT = TypeVar("ServiceT")


class _Service(Generic[ServiceT]):
    """A service of the CRM, imported and built on first use.

    A command then imports only the services it calls (``crm contact show``
    never loads the report engine or the bundle importer).
    """

    def __init__(self, path: str) -> None:
        self.module, _, self.name = path.partition(":")
        self.attr = ""

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, crm: None, owner: type) -> _Service[ServiceT]: ...
    @overload
    def __get__(self, crm: CRM, owner: type) -> ServiceT: ...
    def __get__(self, crm: CRM | None, owner: type) -> ServiceT | _Service[ServiceT]:
        if crm is None:
            return self
        service = getattr(importlib.import_module(self.module), self.name)(crm)
        # Stored on the instance, so later reads skip this descriptor; one instance wins a race.
        return crm.__dict__.setdefault(self.attr, service)  # type: ignore[no-any-return]


class CRM:
    """One CRM: settings, plugins, database, templates, services.

    ``CRM()`` reads ``crm.toml`` and ``CRMCORE_*`` variables and enables every
    installed plugin; keyword arguments override both::

        crm = CRM(database_url="postgresql://127.0.0.1/crm", plugins=["ticketing"])
        lead = crm.leads.capture(email="ada@example.com")

    Two CRM objects in one process never share state: each has its own plugin
    manager, engine, template environment and registries.
    """

    contacts: _Service[ContactService] = _Service("crmcore.services.contacts:ContactService")
    leads: _Service[LeadService] = _Service("crmcore.services.leads:LeadService")
    touchpoints: _Service[TouchpointService] = _Service("crmcore.services.leads:TouchpointService")
    customers: _Service[CustomerService] = _Service("crmcore.services.customers:CustomerService")
    sales: _Service[SalesService] = _Service("crmcore.services.sales:SalesService")
    interactions: _Service[InteractionService] = _Service("crmcore.services.leads:InteractionService")
    products: _Service[ProductService] = _Service("crmcore.services.contacts:ProductService")
    users: _Service[UserService] = _Service("crmcore.services.users:UserService")
    roles: _Service[RoleService] = _Service("crmcore.services.users:RoleService")
    custom_fields: _Service[CustomFieldService] = _Service("crmcore.services.contacts:CustomFieldService")
    consent: _Service[ConsentService] = _Service("crmcore.services.consent:ConsentService")
    segments: _Service[SegmentService] = _Service("crmcore.services.segments:SegmentService")
    links: _Service[LinkService] = _Service("crmcore.links:LinkService")
    forms: _Service[FormService] = _Service("crmcore.forms:FormService")
    affiliates: _Service[AffiliateService] = _Service("crmcore.attribution:AffiliateService")
    conversions: _Service[ConversionService] = _Service("crmcore.attribution:ConversionService")
    reports: _Service[ReportService] = _Service("crmcore.reports.service:ReportService")
    bundles: _Service[BundleService] = _Service("crmcore.bundles:BundleService")

    def __init__(
        self,
        database_url: str | None = None,
        plugins: Sequence[str | object] | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        config_file: str | None = None,
        engine: Engine | None = None,
        tolerant: bool = False,
        **options: Any,
    ) -> None:
        names = [p for p in plugins if isinstance(p, str)] if plugins is not None else None
        objects = [p for p in plugins if not isinstance(p, str)] if plugins is not None else []
        if engine is not None:
            database_url = engine.url.render_as_string(hide_password=False)
        self.settings = settings or Settings.load(config_file, database_url=database_url, plugins=names, **options)
        self.clock: Clock = clock or SystemClock()
        enabled: list[str | object] | None = None
        if self.settings.plugins is not None or objects:
            enabled = [*(self.settings.plugins or ()), *objects]
        self.plugins = PluginHost(enabled, trace=self.settings.trace_hooks, tolerant=tolerant)
        #: The host application's engine when given, else one configured for crmcore.
        self.engine = engine or create_engine(self.settings.database_url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        #: Custom field declarations and active reps, shared by units of work (``crmcore.metadata``).
        self.metadata = MetadataCache(
            self.engine.url.render_as_string(hide_password=True), self.settings.metadata_cache_seconds
        )
        self._current: contextvars.ContextVar[HookContext | None] = contextvars.ContextVar(
            f"crmcore-uow-{id(self)}", default=None
        )
        self._acting: contextvars.ContextVar[ActorLike] = contextvars.ContextVar(
            f"crmcore-actor-{id(self)}", default=None
        )
        #: Lookups shared by the units of work of one ``acting_as`` block (the actor's grants).
        self._acting_memo: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
            f"crmcore-actor-memo-{id(self)}", default=None
        )
        self._setting_specs = self._collect_setting_specs()
        if not tolerant:
            self.plugins.call("crm_startup", crm=self)

    def __repr__(self) -> str:
        return f"<CRM {self.engine.url.render_as_string(hide_password=True)} {self.plugins.names}>"

    # -- units of work ---------------------------------------------------------

    @contextmanager
    def transaction(
        self,
        actor: ActorLike = None,
        *,
        session: Session | None = None,
        readonly: bool = False,
        independent: bool = False,
    ) -> Iterator[HookContext]:
        """Open a unit of work: one transaction, committed when the block ends.

        *actor* defaults to the user of the enclosing :meth:`acting_as` block.

        Inside another unit of work on this CRM, joins it with a savepoint, so a
        failure rolls back only the inner part (*readonly* work joins it as is). With *session* (a host
        application's), works inside the host's transaction and leaves the
        commit to the host. *readonly* work never waits for writers on SQLite.
        *independent* work commits on its own even inside another unit of work
        (durable progress marks of a long job, such as "this message was handed
        to the mail server"); on SQLite the outer one must not have written yet.
        """
        if actor is None:
            actor = self._acting.get()
        outer = None if independent else self._current.get()
        if outer is not None:
            if readonly:  # reads join the outer unit of work: nothing to roll back
                yield outer
                return
            with outer.session.begin_nested():
                yield outer
            return
        own = session is None
        session = session or self.session_factory()
        ctx = HookContext(crm=self, session=session, actor=SYSTEM, now=self.clock.now(), own_session=own)
        token = self._current.set(ctx)
        try:
            with _database_errors(self):
                if own:
                    with session.begin():
                        if readonly:
                            session.connection(execution_options={"sqlite_immediate": False})
                        ctx.actor = self.resolve_actor(actor, session)
                        yield ctx
                else:
                    ctx.actor = self.resolve_actor(actor, session)
                    yield ctx
                    session.flush()
                    if ctx._after_commit:  # the host commits; run ours after its commit
                        callbacks = list(ctx._after_commit)
                        event.listen(session, "after_commit", lambda _s: [c() for c in callbacks], once=True)
        finally:
            self._current.reset(token)
            if own:
                session.close()
        if own:
            for callback in ctx._after_commit:
                callback()

    @contextmanager
    def acting_as(self, actor: ActorLike) -> Iterator[None]:
        """Run the block's service calls as *actor* (a user id, email or ``User``).

        Every unit of work opened inside without its own ``actor=`` acts for
        this user, so the record-level rules of :mod:`crmcore.permissions`
        apply to reads (``crm.contacts.list()``) as to writes. ``crm --as USER``
        and the console use it.
        """
        token = self._acting.set(actor)
        memo = self._acting_memo.set({})
        try:
            yield
        finally:
            self._acting_memo.reset(memo)
            self._acting.reset(token)

    @property
    def current(self) -> HookContext | None:
        """The unit of work open in this thread or task, if any."""
        return self._current.get()

    def resolve_actor(self, actor: ActorLike, session: Session) -> Actor:
        """Turn a user id, email, ``User`` or ``Actor`` into an :class:`Actor`."""
        from crmcore.models import User

        if actor is None:
            return SYSTEM
        if isinstance(actor, Actor):
            return actor
        if isinstance(actor, User):
            user: User | None = actor
        elif isinstance(actor, int):
            user = session.get(User, actor)
        else:
            user = session.scalars(select(User).where(User.email == actor.strip().lower())).first()
        if user is None:
            raise NotFound(f"no user {actor!r}")
        if not user.active:
            raise CRMError(f"user {user.email} is disabled")
        return Actor(user_id=user.id, label=f"user:{user.email}", role=user.role, team_id=user.team_id)

    # -- templates ---------------------------------------------------------------

    @cached_property
    def templates(self) -> jinja2.Environment:
        """The Jinja2 environment for trusted templates (autoescape for HTML)."""
        import jinja2

        return jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.template_dirs]),
            autoescape=jinja2.select_autoescape(["html", "htm", "xml"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    @cached_property
    def sandbox(self) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
        """A sandboxed environment for templates end users author (email bodies, pages).

        It can include the shared layouts but never reach Python internals, the
        file system or the database session.
        """
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        return ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.template_dirs]),
            autoescape=True,
        )

    @cached_property
    def template_dirs(self) -> list[Path]:
        """The template search path: bundles' folders, then plugins', then the core's."""
        dirs: list[Path] = []
        for group in self.plugins.call("crm_register_templates"):
            dirs.extend(Path(p) for p in group)
        return dirs

    # -- settings and registries -----------------------------------------------

    def _collect_setting_specs(self) -> dict[tuple[str, str], SettingSpec]:
        specs: dict[tuple[str, str], SettingSpec] = {}
        for spec in self.plugins.collect("crm_register_settings"):
            specs[(spec.plugin, spec.name)] = spec
        for plugin, values in self.settings.plugin_settings.items():
            if not self.plugins.is_enabled(plugin):
                continue
            for key in values:
                if (plugin, key) not in specs:
                    known = sorted(n for p, n in specs if p == plugin)
                    raise ConfigError(
                        f"unknown setting {key!r} for plugin {plugin!r}; known: {', '.join(known) or 'none'}"
                    )
        return specs

    def plugin_setting(self, plugin: str, name: str) -> Any:
        """The value of a plugin's declared setting (converted, or its default)."""
        try:
            spec = self._setting_specs[(plugin, name)]
        except KeyError:
            raise ConfigError(f"plugin {plugin!r} declares no setting {name!r}") from None
        raw = self.settings.for_plugin(plugin).get(name, spec.default)
        try:
            return spec.convert(raw) if raw is not None else None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {plugin}.{name}: {exc}") from None

    @property
    def setting_specs(self) -> list[SettingSpec]:
        """Every declared plugin setting."""
        return list(self._setting_specs.values())

    def asgi_app(self) -> Starlette:
        """The web app (Starlette) with the core's and every plugin's routes; mount it anywhere."""
        from crmcore.web import create_app

        return create_app(self, max_body_bytes=self.settings.web_max_body_bytes)

    def db_upgrade(self, branch: str | None = None) -> list[str]:
        """Migrate the database to head (all branches, or one plugin's); ``crm db upgrade``."""
        from crmcore.migrate import upgrade

        return upgrade(self, branch)

    @cached_property
    def jobs(self) -> Jobs:
        """The outbox, timers and worker of this CRM."""
        from crmcore.jobs import Jobs

        return Jobs(self)

    @cached_property
    def mail(self) -> Mailer:
        """The mail transport and delivery log (``crmcore.mail``)."""
        from crmcore.mail import Mailer

        return Mailer(self)

    @cached_property
    def signer(self) -> Signer:
        """Signed, expiring tokens for links (``crmcore.signing``)."""
        from crmcore.signing import Signer

        return Signer(self.settings, self.clock)

    def dispose(self) -> None:
        """Close the database connections of this CRM."""
        self.engine.dispose()


@contextmanager
def _database_errors(crm: CRM) -> Iterator[None]:
    """Turn "cannot connect" and integrity failures into clear crmcore errors."""
    try:
        yield
    except (CRMError, PluginError):
        raise
    except sa_exc.OperationalError as exc:
        if (
            exc.connection_invalidated
            or "connect" in str(exc.orig).lower()
            or "unable to open" in str(exc.orig).lower()
        ):
            url = crm.engine.url.render_as_string(hide_password=True)
            raise DatabaseUnavailable(f"cannot reach the database {url}: {exc.orig}") from exc
        raise
