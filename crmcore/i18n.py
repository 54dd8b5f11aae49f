"""Marking texts in Python code for the console's translation catalogs.

A text that the console shows but Python composes (a timeline item's
description, the label of a kind) is marked with :func:`N_` where it is
written, so ``pybabel extract`` (keyword ``N_``, one of Babel's defaults) lists
it; the console translates it when it renders the page.
"""

from __future__ import annotations


def N_(message: str) -> str:  # the name gettext tools look for
    """Mark *message* for translation and return it unchanged (it is translated when shown)."""
    return message


#: Stage-move reasons the core stores as text with values (whole numbers) in it; the console recognises
#: a stored reason by its message and shows it translated (:func:`crmcore.console.i18n.term`).
SCORE_QUALIFIED = N_("score %(score)s >= %(rule)s")
NO_ACTIVITY = N_("no activity for %(days)s days")
STORED_MESSAGES = (SCORE_QUALIFIED, NO_ACTIVITY)


__all__ = ["NO_ACTIVITY", "N_", "SCORE_QUALIFIED", "STORED_MESSAGES"]
