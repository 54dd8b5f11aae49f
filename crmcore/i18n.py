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


__all__ = ["N_"]
