"""Demo hooks: plugins (and vendors' bundles) add their part of ``crm demo``'s simulated year."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.demo.simulation import DemoDay


@hookspec
def crm_demo_day(day: DemoDay) -> None:
    """Simulate one business day of this plugin's activity in ``crm demo``.

    Called once per simulated day, after the core's own activity (leads
    captured, touches, qualifications, deals, purchases) and with the CRM's
    clock set to that day. Use the plugin's services (``day.crm``), draw every
    random choice from ``day.rng`` (the demo is reproducible) and count what
    happened with ``day.count("tickets opened")``: the counts end up in the
    demo's summary. Timers due are run by the demo after each week, as a worker
    would. All implementations run; return values are ignored.

    :param day: The day: ``crm``, ``date``, ``rng``, today's new ``leads`` and
        ``customers`` (contact ids), every ``contacts`` id so far, and ``count``.

    .. versionadded:: 0.1
    """
