"""The knowledge base: drafts and versions, full-text search on each database's engine, suggestions, votes."""

from __future__ import annotations

import pytest

from crmcore.errors import NotFound, ValidationError

ARTICLES = [
    (
        "Reset your password",
        "Open Settings, choose Security and click Reset password. A reset link is emailed to you.",
        "Accounts",
    ),
    (
        "Printer shows a paper jam",
        "Open the rear tray, remove any torn paper and restart the printer. Check the rollers.",
        "Hardware",
    ),
    (
        "Change the VAT rate on invoices",
        "Invoices use the VAT rate of the product. Edit the product's tax class.",
        "Billing",
    ),
]


@pytest.fixture
def articles(support):
    return [support.kb.add(title, body, category=category, publish=True) for title, body, category in ARTICLES]


def test_search_ranks_matches_with_the_databases_own_engine(support, articles):
    hits = support.kb.search("printer paper jam")
    assert [h.article.slug for h in hits] == ["printer-shows-a-paper-jam"]
    # no article has every word: any word matches, best first
    assert {h.article.slug for h in support.kb.search("password printer")} == {
        "reset-your-password", "printer-shows-a-paper-jam"}  # fmt: skip
    assert support.kb.search("kubernetes") == []
    assert support.kb.search("'; DROP TABLE ticketing_kb_article; --") == []
    assert support.kb.search("") == []


def test_drafts_are_searchable_by_agents_only_and_versions_are_kept(support, articles):
    draft = support.kb.add("Export your invoices", "Choose Billing, then Export to download a CSV file of invoices.")
    assert draft.status == "draft" and draft.version == 1
    assert draft.slug not in [h.article.slug for h in support.kb.search("export invoices csv")]
    assert [h.article.slug for h in support.kb.search("export invoices csv", include_drafts=True)] == [draft.slug]
    support.kb.update(draft.slug, body="Choose Billing, then Export, and pick CSV or Excel.")
    support.kb.publish(draft.slug)
    assert [h.article.slug for h in support.kb.search("excel")] == [draft.slug]
    assert support.kb.search("download", include_drafts=True) == []  # the old text is no longer indexed
    assert [(v.version, v.body[:25]) for v in support.kb.versions(draft.slug)] == [
        (1, "Choose Billing, then Expo"), (2, "Choose Billing, then Expo")]  # fmt: skip
    assert support.kb.get(draft.slug).version == 2


def test_faq_entries_and_unique_slugs(support):
    faq = support.kb.add("Do you ship abroad?", "Yes, to every EU country.", kind="faq", publish=True)
    twin = support.kb.add("Do you ship abroad?", "Also to Switzerland.", kind="faq")
    assert (faq.slug, twin.slug) == ("do-you-ship-abroad", "do-you-ship-abroad-2")
    assert [a.slug for a in support.kb.list(kind="faq", status="published")] == ["do-you-ship-abroad"]
    with pytest.raises(ValidationError) as caught:
        support.kb.add("", "", kind="video")
    assert set(caught.value.errors) == {"title", "body", "kind"}


def test_a_new_ticket_gets_suggested_articles_and_agents_link_what_they_used(support, articles):
    ticket = support.tickets.open(subject="Paper jam again", body="My printer says paper jam but there is no paper.",
                                  requester="ada@example.com")  # fmt: skip
    suggestions = support.kb.suggest(ticket.number)
    assert suggestions[0].article.slug == "printer-shows-a-paper-jam"
    support.tickets.link_article(ticket.number, "printer-shows-a-paper-jam")
    support.tickets.link_article(ticket.number, "printer-shows-a-paper-jam")  # twice is once
    assert support.kb.tickets_using("printer-shows-a-paper-jam") == [ticket.id]
    assert ("article", "printer-shows-a-paper-jam") in [
        (h.field, h.new_value) for h in support.tickets.history(ticket.number)
    ]


def test_helpful_votes_count_on_published_articles_only(support, articles):
    support.kb.vote(articles[0].slug, helpful=True)
    support.kb.vote(articles[0].slug, helpful=True)
    article = support.kb.vote(articles[0].slug, helpful=False)
    assert (article.helpful_yes, article.helpful_no) == (2, 1)
    draft = support.kb.add("Secret", "Not yet")
    with pytest.raises(NotFound):
        support.kb.vote(draft.slug, helpful=True)
