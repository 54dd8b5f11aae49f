"""Tracking numbers customers can read out on the phone: ``TK-7F3K-9QWD``.

Eight random characters from Crockford's base 32 (no I, L, O or U, so nothing
is confused when spoken or typed), behind a configurable prefix. Reading one
back forgives case, spaces and the look-alikes (O→0, I/L→1).
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOOKALIKE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def generate(prefix: str) -> str:
    """A fresh random tracking number such as ``TK-7F3K-9QWD``."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{prefix}-{chars[:4]}-{chars[4:]}"


def pattern(prefix: str) -> re.Pattern[str]:
    """Finds a tracking number in text (a subject line, a form field)."""
    return re.compile(rf"\b{re.escape(prefix)}[\s-]?([0-9A-Z]{{4}})[\s-]?([0-9A-Z]{{4}})\b", re.IGNORECASE)


def find(text: str | None, prefix: str) -> str | None:
    """The first tracking number in *text*, normalized, or None."""
    if not text:
        return None
    match = pattern(prefix).search(text)
    if not match:
        return None
    return normalize(f"{prefix}-{match.group(1)}-{match.group(2)}", prefix)


def normalize(text: str, prefix: str) -> str | None:
    """``"tk 7f3k 9qwd"`` → ``"TK-7F3K-9QWD"``; None when it is not a tracking number."""
    value = re.sub(r"[\s-]", "", text.strip().upper())
    if not value.startswith(prefix.upper()):
        return None
    chars = value[len(prefix) :].translate(_LOOKALIKE)
    if len(chars) != 8 or any(c not in ALPHABET for c in chars):
        return None
    return f"{prefix.upper()}-{chars[:4]}-{chars[4:]}"
