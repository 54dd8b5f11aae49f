"""Roles, permissions and record-level rules, enforced in the services.

A user's role grants permissions (declared by the core and by plugins through
``crm_register_permissions``) and a *scope*: which records the user reaches.

- ``own``: contacts and opportunities the user owns;
- ``team``: also those owned by members of the user's team (sales reps);
- ``managed``: also those of the teams the user manages (managers);
- ``all``: every record (admins; agents and marketers, who read across owners).

The rules apply whenever a service runs for a user (``actor=...``,
``crm.acting_as(user)``, ``crm --as USER``, the console); work done by the
system (imports, workers, public forms) is not restricted. A record out of
reach is reported as not found, so ids of other reps' records leak nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import ColumnElement, false, or_, select

from crmcore.errors import ConfigError, PermissionDenied
from crmcore.i18n import N_
from crmcore.registry import PermissionSpec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.crm import CRM

SCOPES = ("own", "team", "managed", "all")


@attrs.frozen(kw_only=True)
class BuiltinRole:
    """A role every CRM has; its grants are the permissions' declared defaults."""

    name: str
    scope: str
    description: str


BUILTIN_ROLES: dict[str, BuiltinRole] = {
    role.name: role
    for role in (
        BuiltinRole(name="rep", scope="team", description="Sales rep: their own and their team's records"),
        BuiltinRole(name="agent", scope="all", description="Support agent: tickets, reads every contact"),
        BuiltinRole(name="marketer", scope="all", description="Marketer: campaigns, segments and reports"),
        BuiltinRole(name="manager", scope="managed", description="Manager: the records of the teams they manage"),
        BuiltinRole(name="admin", scope="all", description="Administrator: everything"),
    )
}

#: The core's permissions.
CORE_PERMISSIONS = (
    PermissionSpec(name="console.access", description="Sign in to the staff console",
                   roles=("rep", "agent", "marketer", "manager")),
    PermissionSpec(name="contacts.view", description="See contacts and their timelines",
                   roles=("rep", "agent", "marketer", "manager")),
    PermissionSpec(name="contacts.edit", description="Add and change contacts, log calls and notes, qualify, convert",
                   roles=("rep", "manager")),
    PermissionSpec(name="leads.capture", description="Capture leads (a new requester becomes one too)",
                   roles=("rep", "agent", "marketer", "manager")),
    PermissionSpec(name="contacts.merge", description="Merge duplicate contacts", roles=("manager",)),
    PermissionSpec(name="contacts.erase", description="Erase a person's data"),
    PermissionSpec(name="contacts.export", description="Export every contact", roles=("marketer",)),
    PermissionSpec(name="opportunities.view", description="See opportunities and the pipeline board",
                   roles=("rep", "marketer", "manager")),
    PermissionSpec(name="opportunities.edit", description="Open opportunities and move them between stages",
                   roles=("rep", "manager")),
    PermissionSpec(name="reports.view", description="See the report dashboard", roles=("marketer", "manager")),
    PermissionSpec(name="users.manage", description="Add, disable and grant users; define roles"),
)  # fmt: skip


@attrs.frozen(kw_only=True)
class Grants:
    """What one user may do and reach."""

    user_id: int | None
    role: str | None
    scope: str
    permissions: frozenset[str]
    #: Teams whose members' records the user reaches (for ``team`` and ``managed``).
    team_ids: frozenset[int] = frozenset()

    @property
    def unrestricted(self) -> bool:
        """The system, or a user whose scope is ``all``."""
        return self.user_id is None or self.scope == "all"

    def allows(self, permission: str) -> bool:
        """True when the permission is granted (the system and admins hold all)."""
        return self.user_id is None or self.role == "admin" or permission in self.permissions


SYSTEM_GRANTS = Grants(user_id=None, role=None, scope="all", permissions=frozenset())


def declared(crm: CRM) -> dict[str, PermissionSpec]:
    """Every declared permission by name (the core's and the plugins')."""
    cached: dict[str, PermissionSpec] | None = getattr(crm, "_declared_permissions", None)
    if cached is not None:
        return cached
    specs: dict[str, PermissionSpec] = {}
    for plugin, answer in crm.plugins.collect_by_plugin("crm_register_permissions"):
        for spec in answer:
            if spec.name in specs:
                raise ConfigError(f"permission {spec.name!r} is declared twice (again by plugin {plugin!r})")
            specs[spec.name] = spec
    crm._declared_permissions = specs  # type: ignore[attr-defined]
    return specs


def role_definition(ctx: HookContext, name: str) -> tuple[str, frozenset[str]] | None:
    """The scope and permissions of role *name*, or None when no such role exists."""
    from crmcore.models import Role

    memo = ctx.cache.setdefault("roles", {})
    if name in memo:
        return memo[name]  # type: ignore[no-any-return]
    return definition_of(ctx, name, ctx.first(Role, Role.name == name))


def definition_of(ctx: HookContext, name: str, row: Any) -> tuple[str, frozenset[str]] | None:
    """The scope and permissions of role *name* given its ``crm_role`` row (None: no row), remembered."""
    from crmcore.models import RolePermission

    memo = ctx.cache.setdefault("roles", {})
    result: tuple[str, frozenset[str]] | None
    if row is not None and row.customized:
        granted = ctx.session.scalars(select(RolePermission.permission).where(RolePermission.role_id == row.id))
        result = (row.scope, frozenset(granted))
    elif name in BUILTIN_ROLES:
        defaults = frozenset(s.name for s in declared(ctx.crm).values() if name in s.roles)
        result = (row.scope if row is not None else BUILTIN_ROLES[name].scope, defaults)
    elif row is not None:
        result = (row.scope, frozenset())
    else:
        result = None
    memo[name] = result
    return result


def grants(ctx: HookContext) -> Grants:
    """The acting user's grants in this unit of work (the system holds all)."""
    from crmcore.models import User

    actor = ctx.actor
    if actor.user_id is None:
        return SYSTEM_GRANTS
    found: Grants | None = ctx.cache.get("grants")
    if found is not None and found.user_id == actor.user_id:
        return found
    # One acting_as block (a console request, a CLI command) reads the grants once.
    memo = ctx.crm._acting_memo.get()
    shared = memo.get(f"grants:{actor.user_id}") if memo is not None else None
    if isinstance(shared, Grants):
        ctx.cache["grants"] = shared
        return shared
    user = ctx.session.get(User, actor.user_id)
    if user is None or not user.active:
        raise PermissionDenied.of(N_("this user account is disabled"))
    found = ctx.cache["grants"] = grants_of(ctx, user)
    if memo is not None:
        memo[f"grants:{actor.user_id}"] = found
    return found


def grants_of(ctx: HookContext, user: Any, *, has_extra: bool = True, manages: bool = True) -> Grants:
    """The grants of *user* (an active ``User``): role, extra permissions, teams reached.

    A caller that knows the user holds no permission of their own (*has_extra*
    false) or manages no team (*manages* false) saves the query for it.
    """
    from crmcore.models import TeamManager, UserPermission

    definition = role_definition(ctx, user.role) or ("own", frozenset())
    scope, permissions = definition
    extra: set[str] = set()
    if has_extra:
        extra.update(ctx.session.scalars(select(UserPermission.permission).where(UserPermission.user_id == user.id)))
    teams: set[int] = set()
    if scope in ("team", "managed") and user.team_id is not None:
        teams.add(user.team_id)
    if scope == "managed" and manages:
        teams.update(ctx.session.scalars(select(TeamManager.team_id).where(TeamManager.user_id == user.id)))
    return Grants(user_id=user.id, role=user.role, scope=scope, permissions=permissions | extra,
                  team_ids=frozenset(teams))  # fmt: skip


def has(ctx: HookContext, permission: str) -> bool:
    """True when the acting user (or the system) holds *permission*."""
    return grants(ctx).allows(permission)


def require(ctx: HookContext, permission: str) -> None:
    """Raise :class:`~crmcore.errors.PermissionDenied` unless the actor holds *permission*."""
    if not has(ctx, permission):
        spec = declared(ctx.crm).get(permission)
        what = spec.description.lower() if spec else permission
        raise PermissionDenied.of(N_("you may not %(what)s (permission %(permission)s)"), what=what,
                                  permission=permission)  # fmt: skip


def owner_condition(ctx: HookContext, column: Any) -> ColumnElement[bool] | None:
    """A WHERE condition on an owner column limiting rows to the actor's reach; None for all."""
    from crmcore.models import User

    found = grants(ctx)
    if found.unrestricted:
        return None
    if found.user_id is None:  # pragma: no cover - unrestricted above
        return false()
    if not found.team_ids:
        return column == found.user_id  # type: ignore[no-any-return]
    return or_(column == found.user_id, column.in_(select(User.id).where(User.team_id.in_(sorted(found.team_ids)))))


#: The shapes of a reach condition built once (:func:`reach_condition`): the actor's own records, or their teams' too.
OWN, TEAMS = "own", "teams"


def reach(ctx: HookContext) -> tuple[str | None, dict[str, Any]]:
    """The actor's reach for a statement built once: its shape and its parameters.

    ``(None, {})`` when unrestricted; else :data:`OWN` or :data:`TEAMS` with
    the values of ``reach_user`` and ``reach_teams``. The same rows as
    :func:`owner_condition`, whose values are built into the statement instead.
    """
    found = grants(ctx)
    if found.unrestricted:
        return None, {}
    if not found.team_ids:
        return OWN, {"reach_user": found.user_id}
    return TEAMS, {"reach_user": found.user_id, "reach_teams": sorted(found.team_ids)}


def reach_condition(column: Any, shape: str) -> ColumnElement[bool]:
    """The WHERE condition of a :func:`reach` *shape* on an owner column, its values as bound parameters."""
    from sqlalchemy import bindparam

    from crmcore.models import User

    me = column == bindparam("reach_user")
    if shape == OWN:
        return me  # type: ignore[no-any-return]
    teams = select(User.id).where(User.team_id.in_(bindparam("reach_teams", expanding=True)))
    return or_(me, column.in_(teams))


def reaches(ctx: HookContext, owner_id: int | None) -> bool:
    """True when the actor reaches a record owned by *owner_id*."""
    from crmcore.models import User

    found = grants(ctx)
    if found.unrestricted:
        return True
    if owner_id is None:
        return False
    if owner_id == found.user_id:
        return True
    if not found.team_ids:
        return False
    teams: dict[int, int | None] = ctx.cache.setdefault("owner_teams", {})
    if owner_id not in teams:
        teams[owner_id] = ctx.session.scalar(select(User.team_id).where(User.id == owner_id))
    return teams[owner_id] in found.team_ids
