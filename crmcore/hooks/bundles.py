"""Bundle hooks: vendors ship defaults, and the parts of the CRM that own each kind apply them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.bundles import Bundle, BundleKind


@hookspec
def crm_register_bundles() -> list[Bundle]:
    """Declare the bundles a distribution ships (an industry's ready-made defaults).

    Called when ``crm bundle list|show|apply`` runs. A bundle is plain data: a
    name, a version and :class:`~crmcore.bundles.BundleItem` values (pipeline
    stages, custom fields, segments, SLA policies and calendars, survey
    definitions, email templates, …), each of a kind some enabled plugin
    registers through :func:`crm_register_bundle_kinds`. Template overrides
    need no item: return the bundle's template folder from
    ``crm_register_templates`` marked ``tryfirst=True``.

    :returns: A list of :class:`~crmcore.bundles.Bundle`.

    .. versionadded:: 0.1
    """


@hookspec
def crm_register_bundle_kinds() -> list[BundleKind]:
    """Say how to apply the bundle items of the kinds this plugin owns.

    A collector, called when a bundle is applied. Each
    :class:`~crmcore.bundles.BundleKind` reads the current state of an item
    (to tell a user's edit from the bundle's own version) and writes the
    bundle's data through the owning service, inside the apply's single
    transaction. The core owns ``pipeline`` and ``custom_field``; plugins add
    theirs (``ticketing.sla_policy``, ``surveys.survey``, …).

    :returns: A list of :class:`~crmcore.bundles.BundleKind`.

    .. versionadded:: 0.1
    """
