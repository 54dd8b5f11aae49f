"""Attachment files: size-checked, stored by content hash under the ``attachment_dir`` setting.

Files are written (to a temporary name, then renamed) before the transaction
commits; a rolled-back transaction can leave a file no row points to, never a
row pointing to a missing file. Identical files are stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crmcore.errors import ValidationError
from crmcore.mail import Attachment as FileData

if TYPE_CHECKING:
    from crmcore.crm import CRM

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def folder(crm: CRM) -> Path:
    """Where attachments live (the ``ticketing.attachment_dir`` setting)."""
    return Path(crm.plugin_setting("ticketing", "attachment_dir"))


def safe_filename(name: str | None) -> str:
    """A file name with no path and no odd characters (kept for display and download)."""
    base = os.path.basename((name or "").replace("\\", "/")).strip() or "attachment"
    cleaned = _UNSAFE.sub("_", base)[:200].strip(". ") or "attachment"
    return cleaned


def check_sizes(crm: CRM, files: Sequence[FileData], field: str = "attachments") -> None:
    """Refuse any file over ``max_attachment_bytes`` (all named at once), before anything is written."""
    limit = int(crm.plugin_setting("ticketing", "max_attachment_bytes"))
    too_big = [f"{safe_filename(f.filename)} ({len(f.data):,} bytes)" for f in files if len(f.data) > limit]
    if too_big:
        raise ValidationError({field: f"larger than the {limit:,}-byte limit: {', '.join(too_big)}"})


def store(crm: CRM, data: bytes) -> tuple[str, str]:
    """Write *data* once under its SHA-256; return (relative path, hex digest)."""
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{digest[:2]}/{digest}"
    target = folder(crm) / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{digest}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        temporary.replace(target)
    return relative, digest


def read(crm: CRM, relative: str) -> bytes:
    """The bytes of a stored attachment."""
    return (folder(crm) / relative).read_bytes()
