"""Users, roles and permissions, and the record-level rules every entry point obeys."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from crmcore import hookimpl
from crmcore.errors import ConfigError, NotFound, PermissionDenied, ValidationError
from crmcore.models import AuditEntry
from crmcore.registry import PermissionSpec


class DemoPermissions:
    """A plugin declaring a permission and mapping host accounts to users."""

    @hookimpl
    def crm_register_permissions(self) -> list[PermissionSpec]:
        return [PermissionSpec(name="demo.export", description="Export demo things", roles=("rep",))]

    @hookimpl
    def crm_host_account_user(self, account, ctx):
        return account.get("crm_email")


@pytest.fixture
def crm_plugins():
    return [DemoPermissions()]


@pytest.fixture
def people(crm):
    """Two teams: east (rita, ron), west (wes); a manager of both, an admin, an agent."""
    users = {
        "rita": crm.users.add("rita@example.com", "Rita Rep", role="rep", team="east"),
        "ron": crm.users.add("ron@example.com", "Ron Rep", role="rep", team="east"),
        "wes": crm.users.add("wes@example.com", "Wes West", role="rep", team="west"),
        "mia": crm.users.add("mia@example.com", "Mia Manager", role="manager"),
        "ada": crm.users.add("ada@example.com", "Ada Admin", role="admin"),
        "alex": crm.users.add("alex@example.com", "Alex Agent", role="agent", team="support"),
    }
    crm.users.manage_team("mia@example.com", "east")
    crm.users.manage_team("mia@example.com", "west")
    contacts = {
        name: crm.contacts.add(email=f"{name}-lead@example.org", first_name=name.title(), owner=user.id)
        for name, user in users.items()
        if name in ("rita", "ron", "wes")
    }
    contacts["nobody"] = crm.contacts.add(email="nobody@example.org", first_name="Unowned")
    return users, contacts


def _emails(contacts):
    return sorted(c.email for c in contacts)


def test_rep_reaches_own_and_team_records_only(crm, people):
    _users, contacts = people
    assert _emails(crm.contacts.list()) == sorted(
        ["nobody@example.org", "rita-lead@example.org", "ron-lead@example.org", "wes-lead@example.org"]
    )
    with crm.acting_as("rita@example.com"):
        assert _emails(crm.contacts.list()) == ["rita-lead@example.org", "ron-lead@example.org"]
        assert crm.contacts.get(contacts["ron"].id).email == "ron-lead@example.org"
        with pytest.raises(NotFound):
            crm.contacts.get(contacts["wes"].id)
        with pytest.raises(NotFound):
            crm.contacts.get("wes-lead@example.org")
        with pytest.raises(NotFound):
            crm.contacts.timeline(contacts["wes"].id)
        with pytest.raises(NotFound):
            crm.contacts.update(contacts["nobody"].id, city="Tehran")
    assert crm.contacts.get(contacts["wes"].id).city is None


def test_manager_reaches_the_teams_they_manage_admin_and_agent_reach_all(crm, people):
    users, contacts = people
    with crm.acting_as(users["mia"].id):
        assert _emails(crm.contacts.list()) == sorted(
            ["rita-lead@example.org", "ron-lead@example.org", "wes-lead@example.org"]
        )
    with crm.acting_as(users["ada"]):
        assert len(crm.contacts.list()) == 4
    with crm.acting_as("alex@example.com"):
        assert len(crm.contacts.list()) == 4
        with pytest.raises(PermissionDenied, match=r"contacts\.edit"):
            crm.contacts.update(contacts["rita"].id, city="Shiraz")


def test_permissions_are_checked_in_the_services(crm, people):
    _users, contacts = people
    with pytest.raises(PermissionDenied, match=r"contacts\.merge"):
        crm.contacts.merge(contacts["rita"].id, contacts["ron"].id, actor="rita@example.com")
    with pytest.raises(PermissionDenied, match=r"users\.manage"):
        crm.users.add("new@example.com", "New", actor="mia@example.com")
    merged = crm.contacts.merge(contacts["rita"].id, contacts["ron"].id, actor="mia@example.com")
    assert merged.id == contacts["rita"].id


def test_opportunities_follow_the_owner_rules(crm, people):
    users, contacts = people
    mine = crm.sales.create_opportunity(contacts["rita"].id, name="Rita's deal", amount="100", actor="rita@example.com")
    theirs = crm.sales.create_opportunity(contacts["wes"].id, name="Wes's deal", amount="200", actor="wes@example.com")
    assert mine.owner_id == users["rita"].id
    with crm.acting_as("rita@example.com"):
        assert [o.name for o in crm.sales.list_opportunities()] == ["Rita's deal"]
        with pytest.raises(NotFound):
            crm.sales.get_opportunity(theirs.id)
        with pytest.raises(NotFound):
            crm.sales.move(theirs.id, crm.sales.stages()[1].key)
    with crm.acting_as("mia@example.com"):
        assert {o.name for o in crm.sales.list_opportunities()} == {"Rita's deal", "Wes's deal"}
    with pytest.raises(PermissionDenied):
        crm.sales.create_opportunity(None, name="Agent deal", actor="alex@example.com")


def test_every_change_records_its_actor(crm, people):
    users, contacts = people
    crm.contacts.update(contacts["rita"].id, city="Isfahan", actor="rita@example.com")
    with crm.transaction() as ctx:
        entry = ctx.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "contact.update").order_by(AuditEntry.id.desc())
        ).first()
    assert (entry.actor_id, entry.actor, entry.changes) == (users["rita"].id, "user:rita@example.com",
                                                           {"city": "Isfahan"})


def test_a_rep_adding_a_contact_owns_it(crm, people):
    users, _ = people
    added = crm.contacts.add(email="fresh@example.org", actor="wes@example.com")
    assert added.owner_id == users["wes"].id


def test_plugin_permissions_and_roles(crm, people):
    _users, _ = people
    assert "demo.export" in crm.users.permissions_of("rita@example.com")
    assert "demo.export" not in crm.users.permissions_of("mia@example.com")
    assert "demo.export" in crm.users.permissions_of("ada@example.com")  # admins hold all
    crm.roles.grant("rep", "contacts.merge")
    crm.roles.revoke("rep", "demo.export")
    rep_perms = crm.users.permissions_of("rita@example.com")
    assert "contacts.merge" in rep_perms and "demo.export" not in rep_perms and "contacts.edit" in rep_perms
    crm.roles.add("auditor", scope="all", grant=("contacts.view",))
    crm.users.add("audrey@example.com", "Audrey", role="auditor")
    with crm.acting_as("audrey@example.com"):
        assert len(crm.contacts.list()) == 4
        with pytest.raises(PermissionDenied):
            crm.sales.list_opportunities()
    crm.users.grant("audrey@example.com", "opportunities.view")
    with crm.acting_as("audrey@example.com"):
        assert crm.sales.list_opportunities() == []
    with pytest.raises(ValidationError, match="unknown permission"):
        crm.roles.grant("rep", "contacts.fly")
    with pytest.raises(ValidationError, match="unknown role"):
        crm.users.add("x@example.com", "X", role="pilot")
    with pytest.raises(ValidationError, match="admin"):
        crm.roles.revoke("admin", "contacts.view")


def test_a_permission_declared_twice_is_an_error(crm_factory):
    class Twice:
        @hookimpl
        def crm_register_permissions(self):
            return [PermissionSpec(name="contacts.view", description="again")]

    crm = crm_factory(plugins=[Twice()])
    with pytest.raises(ConfigError, match=r"contacts\.view"):
        crm.users.permissions_of(crm.users.add("z@example.com", "Z").id)


def test_host_accounts_map_to_users(crm, people):
    users, _ = people
    assert crm.users.for_host_account({"crm_email": "rita@example.com"}).id == users["rita"].id
    with pytest.raises(NotFound):
        crm.users.for_host_account({"crm_email": None})
    crm.users.disable("rita@example.com")
    with pytest.raises(NotFound):
        crm.users.for_host_account({"crm_email": "rita@example.com"})


def test_passwords_are_argon2_and_checked(crm, people):
    crm.users.set_password("rita@example.com", "correct horse battery")
    user = crm.users.get("rita@example.com")
    assert user.password_hash.startswith("$argon2id$")
    assert crm.users.authenticate("rita@example.com", "correct horse battery").id == user.id
    assert crm.users.authenticate("RITA@example.com ", "correct horse battery").id == user.id
    assert crm.users.authenticate("rita@example.com", "wrong horse battery") is None
    assert crm.users.authenticate("nobody@example.com", "correct horse battery") is None
    assert crm.users.authenticate("ron@example.com", "") is None  # no password set: no sign-in
    with pytest.raises(ValidationError, match="at least"):
        crm.users.set_password("rita@example.com", "short")
    with pytest.raises(PermissionDenied):
        crm.users.set_password("ron@example.com", "a very long password", actor="rita@example.com")
    crm.users.disable("rita@example.com")
    assert crm.users.authenticate("rita@example.com", "correct horse battery") is None


def test_cli_as_user_obeys_the_same_rules(crm, people, cli):
    _users, contacts = people
    result = cli("--as", "rita@example.com", "contact", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    assert sorted(row["email"] for row in json.loads(result.output)) == [
        "rita-lead@example.org", "ron-lead@example.org"]
    result = cli("--as", "rita@example.com", "contact", "show", str(contacts["wes"].id))
    assert result.exit_code == 1 and "not found" in result.output
    result = cli("--as", "rita@example.com", "contact", "update", str(contacts["rita"].id), "--city", "Yazd")
    assert result.exit_code == 0, result.output
    with crm.transaction() as ctx:
        entry = ctx.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry.actor == "user:rita@example.com"
    result = cli("--as", "ghost@example.com", "contact", "list")
    assert result.exit_code == 1 and "no user" in result.output


def test_cli_user_and_role_commands(crm, cli):
    result = cli("user", "add", "boss@example.com", "--name", "Boss", "--role", "admin", "--password-stdin",
                 input="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    assert crm.users.authenticate("boss@example.com", "a long enough passphrase") is not None
    assert cli("user", "add", "rep@example.com", "--name", "Rep", "--role", "pilot").exit_code == 1
    assert cli("user", "add", "rep@example.com", "--name", "Rep", "--team", "east").exit_code == 0
    result = cli("user", "grant", "rep@example.com", "contacts.merge")
    assert result.exit_code == 0 and "contacts.merge" in result.output
    assert cli("user", "grant", "rep@example.com", "--role", "manager", "--manages", "west").exit_code == 0
    assert crm.users.get("rep@example.com").role == "manager"
    result = cli("user", "set-password", "rep@example.com", "--password-stdin", input="another long secret\n")
    assert result.exit_code == 0, result.output
    assert cli("user", "disable", "rep@example.com").exit_code == 0
    assert crm.users.authenticate("rep@example.com", "another long secret") is None
    listed = json.loads(cli("user", "list", "--format", "json").output)
    assert [(u["email"], u["active"]) for u in listed] == [("boss@example.com", True), ("rep@example.com", False)]
    assert cli("role", "add", "auditor", "--scope", "all", "--grant", "reports.view").exit_code == 0
    roles = {r["name"]: r for r in json.loads(cli("role", "list", "--format", "json").output)}
    assert roles["auditor"]["permissions"] == ["reports.view"] and roles["rep"]["scope"] == "team"
    assert cli("role", "grant", "rep", "contacts.merge").exit_code == 0
    assert cli("role", "revoke", "rep", "contacts.merge").exit_code == 0
    result = cli("--as", "boss@example.com", "role", "scope", "agent", "team")
    assert result.exit_code == 0, result.output
    assert "console.access" in cli("permission", "list").output


def test_migration_core_0006_gives_the_models_schema(crm):
    from crmcore.migrate import branch_heads, schema_diff

    assert len(branch_heads(crm, "core")) == 1  # core_0006 and everything after it, one chain
    assert schema_diff(crm) == []


def test_the_reach_of_statements_built_once_is_the_owner_condition(crm, people):
    """``reach_condition`` with ``reach``'s values selects the rows ``owner_condition`` selects, for every scope."""
    from sqlalchemy import select

    from crmcore import permissions
    from crmcore.models import Contact, Opportunity

    users, contacts = people
    crm.users.add("solo@example.com", "Solo Rep", role="rep")  # a rep without a team: their own records only
    contacts["solo"] = crm.contacts.add(email="solo-lead@example.org", owner="solo@example.com")
    for name, contact in contacts.items():
        crm.sales.create_opportunity(contact.id, name=f"{name}'s deal")
    shapes = set()
    for user in (*users, "solo"):
        with crm.acting_as(f"{user}@example.com"), crm.transaction(readonly=True) as ctx:
            shape, values = permissions.reach(ctx)
            shapes.add(shape)
            for model in (Contact, Opportunity):
                built = permissions.owner_condition(ctx, model.owner_id)
                expected = set(ctx.session.scalars(select(model.id).where(*([built] if built is not None else []))))
                query = select(model.id)
                if shape is not None:
                    query = query.where(permissions.reach_condition(model.owner_id, shape))
                assert set(ctx.session.scalars(query, values)) == expected, (user, model)
                assert expected, (user, model)
    assert shapes == {None, permissions.OWN, permissions.TEAMS}


def test_console_search_finds_within_reach_by_name_id_phone_and_opportunity(crm, people):
    """The search's statement is built once per shape: its values (patterns, id, reach) still pick the right rows."""
    from crmcore.console.views import search_hits

    _users, contacts = people
    crm.contacts.update(contacts["ron"].id, phone="+98 912 555 0199")
    crm.sales.create_opportunity(contacts["rita"].id, name="100% renewal", amount="5")
    crm.sales.create_opportunity(contacts["ron"].id, name="1000 renewal", amount="7")
    crm.sales.create_opportunity(contacts["wes"].id, name="100% west renewal", amount="9")

    def found(user: str, text: str) -> dict[str, list[str]]:
        with crm.acting_as(f"{user}@example.com"):
            return {kind: [hit.path for hit in hits] for kind, hits in search_hits(crm, text).items()}

    rita, ron, wes = (contacts[name].id for name in ("rita", "ron", "wes"))
    assert found("rita", "lead") == {"Contacts": [f"contacts/{ron}", f"contacts/{rita}"]}
    assert found("wes", "lead") == {"Contacts": [f"contacts/{wes}"]}
    assert len(found("ada", "lead")["Contacts"]) == 3  # unrestricted; "nobody" has no "lead" in it
    by_id = str(wes).zfill(2)  # two characters at least
    assert found("rita", by_id) == {}  # the id of a contact out of reach finds nothing
    assert found("wes", by_id)["Contacts"][0] == f"contacts/{wes}"
    assert found("rita", "5550199") == {"Contacts": [f"contacts/{ron}"]}  # by phone
    assert found("wes", "5550199") == {}
    deals = found("rita", "100%")["Opportunities"]  # % taken literally: not "1000 renewal"
    assert len(deals) == 1 and len(found("mia", "100%")["Opportunities"]) == 2
    assert found("alex", "renewal").get("Opportunities") is None  # agents may not see opportunities
    assert found("rita", "x") == {}  # under two characters
    assert found("rita", "9" * 25) == {}  # a number too long for an id: no error
