"""With email marketing installed: a campaign message sent to a contact sends them the survey later."""

from __future__ import annotations

import pytest
from crmcore_email_marketing import email_marketing
from crmcore_surveys import surveys
from crmcore_surveys.triggers import listening

from crmcore import hookimpl


class Everyone:
    @hookimpl
    def crm_segment_query(self, name, ctx):
        from sqlalchemy import select

        from crmcore.models import Contact

        return select(Contact.id) if name == "everyone" else None


@pytest.fixture
def crm_plugins():
    return ["surveys", "email_marketing", Everyone()]


@pytest.fixture
def crm_settings(smtp_settings):
    return {**smtp_settings, "plugin_settings": {"email_marketing": {"consent_regime": "opt_out"}}}


def test_a_campaign_message_sends_the_survey_three_days_later(crm, nps_definition, customer, clock, run_due_jobs,
                                                              smtp_server):  # fmt: skip
    assert "crm_campaign_message_sent" in listening(crm)
    service, em = surveys(crm), email_marketing(crm)
    nps_definition["triggers"] = [{"hook": "crm_campaign_message_sent", "delay": "3d", "when": {"campaign": "Onboard"}}]
    service.surveys.create(nps_definition)
    service.surveys.activate("nps")
    ada = customer(crm, "ada@example.com", first_name="Ada")
    em.templates.create("welcome", subject="Welcome {{ contact.first_name }}", html="<p>Hello!</p>")
    campaign = em.campaigns.create("Onboard", template="welcome", segment="everyone")
    em.campaigns.send("Onboard")
    run_due_jobs()
    assert [str(m["Subject"]) for m in smtp_server.to("ada@example.com")] == ["Welcome Ada"]
    [invitation] = service.surveys.invitations("nps")
    assert (invitation.contact_id, invitation.subject_kind, invitation.subject_id) == (ada.id, "campaign", campaign.id)
    clock.advance(days=3)
    run_due_jobs()
    run_due_jobs()
    assert [str(m["Subject"]) for m in smtp_server.to("ada@example.com")] == ["Welcome Ada", "Would you recommend us?"]
