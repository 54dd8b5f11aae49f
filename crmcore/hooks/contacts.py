"""Contact hooks: owner assignment, duplicates, interactions, merge and erase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Select

    from crmcore.context import HookContext
    from crmcore.events import ContactErased, ContactMerged, InteractionLogged
    from crmcore.models import Contact, Interaction
    from crmcore.services.timeline import TimelineCursor


@hookspec(firstresult=True)
def crm_owner_assign(contact: Contact, ctx: HookContext) -> int | None:
    """Choose the sales rep who owns a newly captured *contact*.

    Stops at the first non-None result; return ``None`` to abstain. The core's
    default (``trylast``) gives the lead to the active rep with the fewest open
    leads. Runs inside the capture transaction, before the contact is flushed.

    :param contact: The contact being captured. Read-only.
    :param ctx: The unit of work: session, CRM, acting user, clock.
    :returns: The id of the owning user, or ``None``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crm_duplicate_find(contact: Contact, ctx: HookContext) -> Contact | None:
    """Find an existing contact that *contact* duplicates.

    Stops at the first non-None result. The core's default (``trylast``)
    matches the normalized email, then the normalized phone. Runs inside the
    transaction before a capture or import writes anything; must not write.

    :param contact: The unflushed candidate with normalized email and phone.
    :param ctx: The unit of work.
    :returns: The existing contact, or ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def crm_interaction_before_log(interaction: Interaction, ctx: HookContext) -> None:
    """A rep is about to log a call, meeting, email or note.

    Runs inside the transaction before the row is flushed; may veto with
    :class:`~crmcore.errors.ValidationError`. All implementations run; return
    values are ignored.

    :param interaction: The unflushed interaction.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_interaction_logged(event: InteractionLogged, ctx: HookContext) -> None:
    """A rep logged an interaction.

    Runs inside the transaction after the row is flushed. All implementations
    run; return values are ignored.

    :param event: The interaction's id, contact, kind and rep.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_before_merge(survivor: Contact, merged: Contact, ctx: HookContext) -> None:
    """Two contacts are about to be merged.

    Runs inside the transaction before anything moves; may veto with
    :class:`~crmcore.errors.ValidationError`. All implementations run; return
    values are ignored.

    :param survivor: The contact that stays.
    :param merged: The contact folded into *survivor*.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_merged(event: ContactMerged, ctx: HookContext) -> None:
    """Two contacts were merged; move the plugin's own rows to the survivor here.

    Runs inside the merge transaction after the core moved touchpoints,
    purchases, opportunities, interactions and activities. Raising rolls the
    whole merge back. All implementations run; return values are ignored.

    :param event: The survivor's and the merged contact's ids.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_before_erase(contact: Contact, ctx: HookContext) -> None:
    """A contact's personal data is about to be erased.

    Runs inside the transaction; may veto with
    :class:`~crmcore.errors.ValidationError` (for example while a legal hold
    applies). All implementations run; return values are ignored.

    :param contact: The contact, still intact.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_erased(event: ContactErased, ctx: HookContext) -> None:
    """A contact was erased: remove or anonymize personal data in the plugin's tables.

    Runs inside the erase transaction after the core anonymized its own rows;
    keep aggregates (counts, amounts), drop what identifies the person. Raising
    rolls the erase back. All implementations run; return values are ignored.

    :param event: The erased contact's id.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_details(contact: Contact, ctx: HookContext) -> dict[str, Any] | None:
    """Contribute sections to ``crm contact show`` (an open balance, open tickets).

    A collector: every implementation may answer; the core merges the sections.
    Runs in a read-only transaction; must not write.

    :param contact: The contact shown.
    :param ctx: The unit of work.
    :returns: ``{section_name: JSON-able value}``, or ``None``.

    .. versionadded:: 0.1
    """


@hookspec
def crm_contact_timeline(
    contact: Contact, before: datetime | None, cursor: TimelineCursor | None, limit: int, ctx: HookContext
) -> list[dict[str, Any]]:
    """Contribute items to a contact's timeline (tickets, survey answers, invoices).

    A collector: every implementation answers with at most *limit* items after
    *cursor* in timeline order, newest first; the core merges them with its own
    (lifecycle moves, touchpoints, interactions, purchases, feedback) and keeps
    the newest *limit*. Each item is ``{"at": datetime, "kind": str, "text":
    str, "key": str, "id": int}`` plus any ids: *key* names the kind of row
    (prefix it with your plugin's name) and *id* its primary key; the order is
    ``(at, key, id)``, newest first. Filter your rows with
    ``crmcore.services.timeline.older(cursor, key, Model.at_column, Model.id)``
    so that items sharing a timestamp are neither skipped nor repeated.
    Must not write.

    For the console's languages an item may also carry ``"message"``: a text
    with ``%(name)s`` placeholders, marked with ``crmcore.i18n.N_`` and
    translated in your plugin's ``console.po`` (or a list of such texts, shown
    joined); ``"values"``: the placeholders' data, shown as given, numbers and
    dates the locale's way, money given as ``{"amount": ..., "currency": ...}``;
    and ``"terms"``: placeholders holding words the catalogs translate (a
    stage, a channel). The console shows the translated message, else
    ``text``; the badge is ``kind``, translated when the catalogs have it.

    :param contact: The contact.
    :param before: ``cursor.at`` (or ``None``), for implementations that page by time alone
        (strictly older items only; the core drops what comes after the cursor).
    :param cursor: Where the previous page ended (``None`` for the first page).
    :param limit: The page size.
    :param ctx: The unit of work.
    :returns: A list of items.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def crm_segment_query(name: str, ctx: HookContext) -> Select[int] | None:
    """Resolve a segment name to a SQL query of its members' contact ids.

    Campaigns, reports and surveys target segments through this decision hook;
    the core's segments answer it, and a plugin may answer for names it owns.
    Stops at the first non-None result; return ``None`` for a name you do not
    know. Must not write; runs inside the caller's transaction.

    :param name: The segment's name.
    :param ctx: The unit of work.
    :returns: ``select(Contact.id).where(...)``, or ``None``.

    .. versionadded:: 0.1
    """
