"""Users and roles on the command line: ``crm user ...``, ``crm role ...``."""

from __future__ import annotations

import sys

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, format_option


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def user() -> None:
    """Users: the reps, agents, marketers, managers and admins who work in the CRM."""


@user.command("add")
@click.argument("email")
@click.option("--name", required=True, help="Full name.")
@click.option("--role", default="rep", show_default=True, help="A role (see `crm role list`).")
@click.option("--team", help="Team name (created if new).")
@click.option("--locale", help="Console language (en, fa).")
@click.option("--password", "ask_password", is_flag=True, help="Prompt for a console password.")
@click.option("--password-stdin", is_flag=True, help="Read the console password from the first line of stdin.")
def user_add(email: str, name: str, role: str, team: str | None, locale: str | None,
             ask_password: bool, password_stdin: bool) -> None:  # fmt: skip
    """Add a user (without a password they cannot sign in to the console).

    \b
    Examples:
      crm user add rep@example.com --name "Rita Rep" --role rep --team east
      echo 'a long passphrase' | crm user add boss@example.com --name Boss --role admin --password-stdin
    """
    password = _read_password(password_stdin) if (ask_password or password_stdin) else None
    created = get_crm().users.add(email, name, role=role, team=team, locale=locale, password=password)
    click.echo(f"user {created.id} added")


@user.command("list")
@format_option
def user_list(fmt: str) -> None:
    """List users.

    \b
    Example:
      crm user list --format json
    """
    columns = ["id", "email", "name", "role", "team_id", "active", "last_login_at"]
    emit([{c: getattr(u, c) for c in columns} for u in get_crm().users.list()], fmt, columns)


@user.command("disable")
@click.argument("ref")
def user_disable(ref: str) -> None:
    """Disable a user: no more sign-in, and their open console sessions end.

    \b
    Example:
      crm user disable rep@example.com
    """
    found = get_crm().users.disable(ref)
    click.echo(f"user {found.id} disabled")


@user.command("enable")
@click.argument("ref")
def user_enable(ref: str) -> None:
    """Enable a disabled user.

    \b
    Example:
      crm user enable rep@example.com
    """
    found = get_crm().users.enable(ref)
    click.echo(f"user {found.id} enabled")


@user.command("set-password")
@click.argument("ref")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_set_password(ref: str, password_stdin: bool) -> None:
    """Set a user's console password (stored as an argon2id hash); their sessions end.

    \b
    Examples:
      crm user set-password rep@example.com
      printf '%s\\n' "$PASSWORD" | crm user set-password rep@example.com --password-stdin
    """
    found = get_crm().users.set_password(ref, _read_password(password_stdin))
    click.echo(f"password of user {found.id} set")


@user.command("grant")
@click.argument("ref")
@click.argument("permissions", nargs=-1, required=False)
@click.option("--role", help="Give the user this role.")
@click.option("--manages", "manages", multiple=True, metavar="TEAM", help="Make the user a manager of TEAM.")
@click.option("--revoke", is_flag=True, help="Take the PERMISSIONS back instead.")
def user_grant(ref: str, permissions: tuple[str, ...], role: str | None, manages: tuple[str, ...],
               revoke: bool) -> None:  # fmt: skip
    """Grant permissions (on top of the role's), a role, or teams to manage.

    \b
    Examples:
      crm user grant rep@example.com contacts.merge
      crm user grant lee@example.com --role manager --manages east --manages west
      crm user grant rep@example.com contacts.merge --revoke
    """
    crm = get_crm()
    if not (permissions or role or manages):
        raise click.UsageError("give permissions, --role or --manages")
    if role:
        crm.users.update(ref, role=role)
    for team in manages:
        crm.users.manage_team(ref, team)
    for permission in permissions:
        (crm.users.revoke if revoke else crm.users.grant)(ref, permission)
    click.echo("permissions of user: " + ", ".join(crm.users.permissions_of(ref)))


@click.group()
def role() -> None:
    """Roles: which permissions they grant and which records (scope) their users reach."""


@role.command("list")
@format_option
def role_list(fmt: str) -> None:
    """List roles with their scope and permissions.

    \b
    Example:
      crm role list --format json
    """
    rows = get_crm().roles.list()
    if fmt == "table":
        rows = [{**r, "permissions": " ".join(r["permissions"])} for r in rows]
    emit(rows, fmt, ["name", "scope", "builtin", "permissions"])


@role.command("add")
@click.argument("name")
@click.option("--scope", default="own", show_default=True, type=click.Choice(["own", "team", "managed", "all"]))
@click.option("--description", default="")
@click.option("--grant", "grants", multiple=True, metavar="PERMISSION", help="A permission (repeatable).")
def role_add(name: str, scope: str, description: str, grants: tuple[str, ...]) -> None:
    """Define a role.

    \b
    Example:
      crm role add auditor --scope all --grant contacts.view --grant reports.view
    """
    get_crm().roles.add(name, scope=scope, description=description, grant=grants)
    click.echo(f"role {name} added")


@role.command("grant")
@click.argument("name")
@click.argument("permissions", nargs=-1, required=True)
def role_grant(name: str, permissions: tuple[str, ...]) -> None:
    """Let a role do more (a built-in role keeps its other grants).

    \b
    Example:
      crm role grant rep contacts.merge
    """
    crm = get_crm()
    for permission in permissions:
        crm.roles.grant(name, permission)
    click.echo(f"role {name} granted {', '.join(permissions)}")


@role.command("revoke")
@click.argument("name")
@click.argument("permissions", nargs=-1, required=True)
def role_revoke(name: str, permissions: tuple[str, ...]) -> None:
    """Let a role do less.

    \b
    Example:
      crm role revoke marketer contacts.export
    """
    crm = get_crm()
    for permission in permissions:
        crm.roles.revoke(name, permission)
    click.echo(f"role {name} revoked {', '.join(permissions)}")


@role.command("scope")
@click.argument("name")
@click.argument("scope", type=click.Choice(["own", "team", "managed", "all"]))
def role_scope(name: str, scope: str) -> None:
    """Change which records a role's users reach.

    \b
    Example:
      crm role scope agent team
    """
    get_crm().roles.set_scope(name, scope)
    click.echo(f"role {name} reaches {scope} records")


@click.group("permission")
def permission() -> None:
    """Permissions declared by the core and the plugins."""


@permission.command("list")
@format_option
def permission_list(fmt: str) -> None:
    """List every declared permission and the built-in roles holding it by default.

    \b
    Example:
      crm permission list
    """
    from crmcore.permissions import declared

    rows = [{"name": s.name, "description": s.description, "roles": " ".join(s.roles)}
            for s in sorted(declared(get_crm()).values(), key=lambda s: s.name)]  # fmt: skip
    emit(rows, fmt, ["name", "roles", "description"])


COMMANDS = [user, role, permission]
