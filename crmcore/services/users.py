"""Users, teams and roles: who works in the CRM, what they may do, their passwords."""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, select

from crmcore import permissions
from crmcore.context import HookContext
from crmcore.errors import Conflict, NotFound, ValidationError
from crmcore.models import Role, RolePermission, Team, TeamManager, User, UserPermission
from crmcore.services.base import Service, get_user
from crmcore.validation import clean_text, normalize_email

#: Shortest console password accepted.
MIN_PASSWORD_LENGTH = 10


def password_hasher() -> Any:
    """The argon2id hasher (argon2-cffi's recommended parameters)."""
    from argon2 import PasswordHasher

    return PasswordHasher()


def _check_password_strength(password: str, email: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError({"password": f"use at least {MIN_PASSWORD_LENGTH} characters"})
    if len(password) > 1024:
        raise ValidationError({"password": "use at most 1024 characters"})
    if password.strip().lower() in {email.lower(), email.split("@")[0].lower()}:
        raise ValidationError({"password": "the password must not be the email address"})


def _team(ctx: HookContext, name: str | None) -> int | None:
    if not name:
        return None
    row = ctx.first(Team, Team.name == name)
    if row is None:
        row = Team(name=clean_text(name, "team", 120, required=True))
        ctx.session.add(row)
        ctx.session.flush()
    return int(row.id)


def _user(ctx: HookContext, ref: int | str | User) -> User:
    if isinstance(ref, User):
        ref = ref.id
    try:
        user = get_user(ctx, ref, "user")
    except ValidationError:
        raise NotFound(f"no user {ref!r}") from None
    if user is None:
        raise NotFound("give a user id or email")
    return user


class UserService(Service):
    """The people who work in the CRM (reps, agents, marketers, managers, admins)."""

    def add(
        self, email: str, name: str, *, role: str = "rep", team: str | None = None,
        external_id: str | None = None, password: str | None = None, locale: str | None = None,
        actor: Any = None,
    ) -> User:  # fmt: skip
        """Add a user; the email must be unique, the role must exist.

        Without *password* the user cannot sign in to the console until one is
        set (``set_password``); there is never a default account.
        """
        _, normalized = normalize_email(email)
        name_text = clean_text(name, "name", 200, required=True)
        if password is not None:
            _check_password_strength(password, normalized)
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            if permissions.role_definition(ctx, role) is None:
                raise ValidationError({"role": f"unknown role {role!r}; roles: {', '.join(self._role_names(ctx))}"})
            if ctx.first(User, User.email == normalized):
                raise Conflict(f"a user with email {normalized} already exists")
            user = User(email=normalized, name=name_text, role=role, team_id=_team(ctx, team),
                        active=True, external_id=external_id, created_at=ctx.now, session_epoch=0,
                        locale=clean_text(locale, "locale", 16))  # fmt: skip
            if password is not None:
                user.password_hash = password_hasher().hash(password)
                user.password_changed_at = ctx.now
            ctx.session.add(user)
            ctx.session.flush()
            ctx.audit("user.create", "user", user.id, {"email": normalized, "role": role})
            ctx.metadata_changed()  # the roster of reps
        return user

    def _role_names(self, ctx: HookContext) -> builtins.list[str]:
        stored = ctx.session.scalars(select(Role.name)).all()
        return sorted({*permissions.BUILTIN_ROLES, *stored})

    def get(self, ref: int | str) -> User:
        """A user by id or email."""
        with self.crm.transaction(readonly=True) as ctx:
            return _user(ctx, ref)

    def list(self, *, include_disabled: bool = True) -> builtins.list[User]:
        """Every user, by id."""
        query = select(User).order_by(User.id)
        if not include_disabled:
            query = query.where(User.active.is_(True))
        with self.crm.transaction(readonly=True) as ctx:
            return list(ctx.session.scalars(query))

    def update(self, ref: int | str, *, role: str | None = None, team: str | None = None,
               name: str | None = None, locale: str | None = None, actor: Any = None) -> User:  # fmt: skip
        """Change a user's role, team, name or console language."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            changes: dict[str, Any] = {}
            if role is not None and role != user.role:
                if permissions.role_definition(ctx, role) is None:
                    raise ValidationError({"role": f"unknown role {role!r}"})
                changes["role"] = user.role = role
            if team is not None:
                changes["team_id"] = user.team_id = _team(ctx, team)
            if name is not None:
                changes["name"] = user.name = clean_text(name, "name", 200, required=True) or user.name
            if locale is not None:
                changes["locale"] = user.locale = clean_text(locale, "locale", 16)
            ctx.audit("user.update", "user", user.id, changes)
            ctx.metadata_changed()  # the roster of reps
        return user

    def disable(self, ref: int | str, *, actor: Any = None) -> User:
        """Disable a user: they cannot sign in or act, and their open sessions end now."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            if ctx.actor.user_id == user.id:
                raise ValidationError({"user": "you cannot disable yourself"})
            user.active = False
            user.session_epoch = (user.session_epoch or 0) + 1
            ctx.audit("user.disable", "user", user.id, {})
            ctx.metadata_changed()  # the roster of reps
        return user

    def enable(self, ref: int | str, *, actor: Any = None) -> User:
        """Enable a disabled user again."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            user.active = True
            ctx.audit("user.enable", "user", user.id, {})
            ctx.metadata_changed()  # the roster of reps
        return user

    def set_password(self, ref: int | str, password: str, *, actor: Any = None) -> User:
        """Set a user's console password (argon2id); their other sessions end.

        A user may change their own password; changing someone else's needs
        ``users.manage``.
        """
        with self.crm.transaction(actor) as ctx:
            user = _user(ctx, ref)
            if ctx.actor.user_id != user.id:
                permissions.require(ctx, "users.manage")
            _check_password_strength(password, user.email)
            user.password_hash = password_hasher().hash(password)
            user.password_changed_at = ctx.now
            user.session_epoch = (user.session_epoch or 0) + 1
            ctx.audit("user.password", "user", user.id, {})
        return user

    def end_sessions(self, ref: int | str, *, actor: Any = None) -> None:
        """End every console session of a user (sign-out; yourself or with ``users.manage``)."""
        with self.crm.transaction(actor) as ctx:
            user = _user(ctx, ref)
            if ctx.actor.user_id != user.id:
                permissions.require(ctx, "users.manage")
            user.session_epoch = (user.session_epoch or 0) + 1
            ctx.audit("user.logout", "user", user.id, {})

    def authenticate(self, email: str, password: str) -> User | None:
        """The active user with this email and password, or None (and no hint which was wrong).

        The hash is checked even for an unknown email, so the answer takes as
        long either way; an outdated hash is upgraded on success.
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = password_hasher()
        with self.crm.transaction() as ctx:
            user = ctx.first(User, User.email == (email or "").strip().lower())
            stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH.get(hasher)
            try:
                hasher.verify(stored, password or "")
            except (VerificationError, InvalidHashError):
                return None
            if user is None or not user.active or not user.password_hash:
                return None
            if hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hasher.hash(password)
            user.last_login_at = ctx.now
            ctx.audit("user.login", "user", user.id, {})
            return user  # type: ignore[no-any-return]

    def grant(self, ref: int | str, permission: str, *, actor: Any = None) -> None:
        """Grant one *permission* to one user, on top of their role's."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            _known_permission(ctx, permission)
            if ctx.session.get(UserPermission, (user.id, permission)) is None:
                ctx.session.add(UserPermission(user_id=user.id, permission=permission))
            ctx.audit("user.grant", "user", user.id, {"permission": permission})

    def revoke(self, ref: int | str, permission: str, *, actor: Any = None) -> None:
        """Take back a permission granted to one user (the role's grants stay)."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            ctx.session.execute(
                delete(UserPermission).where(UserPermission.user_id == user.id, UserPermission.permission == permission)
            )
            ctx.audit("user.revoke", "user", user.id, {"permission": permission})

    def manage_team(self, ref: int | str, team: str, *, actor: Any = None) -> None:
        """Make a user a manager of *team* (with the ``managed`` scope they reach its records)."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            user = _user(ctx, ref)
            team_id = _team(ctx, team)
            assert team_id is not None
            if ctx.session.get(TeamManager, (team_id, user.id)) is None:
                ctx.session.add(TeamManager(team_id=team_id, user_id=user.id))
            ctx.audit("user.manage_team", "user", user.id, {"team": team})

    def permissions_of(self, ref: int | str) -> builtins.list[str]:
        """Every permission *ref* holds (an admin: every declared one), sorted."""
        with self.crm.transaction(readonly=True) as ctx:
            user = _user(ctx, ref)
        with self.crm.transaction(user.id, readonly=True) as ctx:
            found = permissions.grants(ctx)
            if found.role == "admin":
                return sorted(permissions.declared(self.crm))
            return sorted(found.permissions)

    def for_host_account(self, account: Any) -> User:
        """The CRM user a host application's *account* maps to (``crm_host_account_user``).

        Raises NotFound when no plugin maps it, or the user is unknown or disabled.
        """
        with self.crm.transaction(readonly=True) as ctx:
            answer = ctx.call("crm_host_account_user", account=account)
            if answer is None:
                raise NotFound("this account has no CRM user")
            user = answer if isinstance(answer, User) else get_user(ctx, answer, "user")
            if user is None or not user.active:
                raise NotFound("this account has no active CRM user")
            return user


class _DummyHash:
    """A hash of a random password, verified when the email is unknown (equal timing)."""

    def __init__(self) -> None:
        self._value: str | None = None

    def get(self, hasher: Any) -> str:
        if self._value is None:
            import secrets

            self._value = hasher.hash(secrets.token_urlsafe(16))
        return self._value


_DUMMY_HASH = _DummyHash()


def _known_permission(ctx: HookContext, permission: str) -> None:
    if permission not in permissions.declared(ctx.crm):
        known = ", ".join(sorted(permissions.declared(ctx.crm)))
        raise ValidationError({"permission": f"unknown permission {permission!r}; known: {known}"})


class RoleService(Service):
    """Roles: the built-in ones and those an admin defines; what each grants."""

    def list(self) -> builtins.list[dict[str, Any]]:
        """Every role with its scope and permissions, by name."""
        with self.crm.transaction(readonly=True) as ctx:
            stored = {r.name: r for r in ctx.session.scalars(select(Role))}
            rows = []
            for name in sorted({*permissions.BUILTIN_ROLES, *stored}):
                definition = permissions.role_definition(ctx, name)
                assert definition is not None
                scope, granted = definition
                if name == "admin":
                    granted = frozenset(permissions.declared(self.crm))
                builtin = permissions.BUILTIN_ROLES.get(name)
                description = stored[name].description if name in stored else builtin.description if builtin else ""
                rows.append({"name": name, "scope": scope, "builtin": builtin is not None,
                             "description": description, "permissions": sorted(granted)})  # fmt: skip
            return rows

    def add(self, name: str, *, scope: str = "own", description: str = "",
            grant: tuple[str, ...] = (), actor: Any = None) -> Role:  # fmt: skip
        """Define a new role with its scope and permissions."""
        name_text = clean_text(name, "name", 40, required=True) or ""
        if not name_text.replace("_", "").replace("-", "").isalnum():
            raise ValidationError({"name": "use letters, digits, - and _"})
        if scope not in permissions.SCOPES:
            raise ValidationError({"scope": f"scope must be one of {', '.join(permissions.SCOPES)}"})
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            if name_text in permissions.BUILTIN_ROLES or ctx.first(Role, Role.name == name_text):
                raise Conflict(f"role {name_text!r} already exists")
            for permission in grant:
                _known_permission(ctx, permission)
            role = Role(name=name_text, scope=scope, description=clean_text(description, "description", 255) or "",
                        customized=True)  # fmt: skip
            ctx.session.add(role)
            ctx.session.flush()
            for permission in sorted(set(grant)):
                ctx.session.add(RolePermission(role_id=role.id, permission=permission))
            ctx.audit("role.create", "role", role.id, {"name": name_text, "scope": scope, "grant": sorted(grant)})
        return role

    def _stored(self, ctx: HookContext, name: str) -> Role:
        """The role's row; a built-in role is stored with its current grants first."""
        definition = permissions.role_definition(ctx, name)
        if definition is None:
            raise NotFound(f"no role {name!r}")
        if name == "admin":
            raise ValidationError({"role": "admin holds every permission; it cannot be changed"})
        role: Role | None = ctx.first(Role, Role.name == name)
        if role is None or not role.customized:
            scope, granted = definition
            if role is None:
                role = Role(name=name, scope=scope, description=permissions.BUILTIN_ROLES[name].description)
                ctx.session.add(role)
            role.customized = True
            ctx.session.flush()
            for permission in granted:
                ctx.session.add(RolePermission(role_id=role.id, permission=permission))
        ctx.cache.pop("roles", None)
        ctx.cache.pop("grants", None)
        return role

    def grant(self, name: str, permission: str, *, actor: Any = None) -> None:
        """Let role *name* do *permission*."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            _known_permission(ctx, permission)
            role = self._stored(ctx, name)
            ctx.session.flush()
            if ctx.session.get(RolePermission, (role.id, permission)) is None:
                ctx.session.add(RolePermission(role_id=role.id, permission=permission))
            ctx.audit("role.grant", "role", role.id, {"permission": permission})

    def revoke(self, name: str, permission: str, *, actor: Any = None) -> None:
        """Stop role *name* from doing *permission*."""
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            role = self._stored(ctx, name)
            ctx.session.flush()
            ctx.session.execute(
                delete(RolePermission).where(RolePermission.role_id == role.id, RolePermission.permission == permission)
            )
            ctx.audit("role.revoke", "role", role.id, {"permission": permission})

    def set_scope(self, name: str, scope: str, *, actor: Any = None) -> None:
        """Change which records role *name* reaches (own, team, managed, all)."""
        if scope not in permissions.SCOPES:
            raise ValidationError({"scope": f"scope must be one of {', '.join(permissions.SCOPES)}"})
        with self.crm.transaction(actor) as ctx:
            permissions.require(ctx, "users.manage")
            role = self._stored(ctx, name)
            role.scope = scope
            ctx.audit("role.scope", "role", role.id, {"scope": scope})
