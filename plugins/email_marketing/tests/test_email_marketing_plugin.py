"""The email_marketing plugin installs, is discovered, and brings its own migration branch."""

from crmcore.migrate import branch_heads, schema_diff, status


def test_plugin_is_discovered_and_enabled(crm):
    assert crm.plugins.is_enabled("email_marketing")
    assert "crm_register_migrations" in crm.plugins.hooks_of("email_marketing")


def test_branch_has_exactly_one_head_and_is_migrated(crm):
    assert len(branch_heads(crm, "email_marketing")) == 1
    branches = {row["branch"]: row for row in status(crm)}
    assert branches["email_marketing"]["up_to_date"] and branches["core"]["up_to_date"]


def test_migrations_produce_the_models_schema(crm):
    assert schema_diff(crm) == []
