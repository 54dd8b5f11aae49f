"""Signed URLs put into campaign messages: unsubscribe, open pixel, tracked links.

Tokens are made by ``crm.signer``, each for its own purpose, and carry the
campaign and contact ids (a pair that names one recipient row), so they can be
made before the row is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmcore.crm import CRM

UNSUBSCRIBE_PURPOSE = "email-unsubscribe"
OPEN_PURPOSE = "email-open"
#: Unsubscribe links keep working for this long (RFC 8058 asks for a long time).
UNSUBSCRIBE_MAX_AGE = 5 * 365 * 86400
OPEN_MAX_AGE = 2 * 365 * 86400


def _base(crm: CRM) -> str:
    return crm.settings.base_url.rstrip("/")


def unsubscribe_url(crm: CRM, contact_id: int | None, campaign_id: int | None = None) -> str:
    """The signed one-click unsubscribe URL of a contact (from a campaign, when given)."""
    token = crm.signer.dumps(UNSUBSCRIBE_PURPOSE, [contact_id, campaign_id])
    return f"{_base(crm)}/email/u/{token}"


def open_pixel_url(crm: CRM, campaign_id: int, contact_id: int) -> str:
    """The signed URL of the 1×1 image that records an open."""
    token = crm.signer.dumps(OPEN_PURPOSE, [campaign_id, contact_id])
    return f"{_base(crm)}/email/o/{token}.gif"


def read_unsubscribe(crm: CRM, token: str) -> tuple[int | None, int | None]:
    """``(contact_id, campaign_id)`` of a valid unsubscribe token; InvalidToken otherwise."""
    data: Any = crm.signer.loads(UNSUBSCRIBE_PURPOSE, token, max_age=UNSUBSCRIBE_MAX_AGE)
    return _pair(crm, data)


def read_open(crm: CRM, token: str) -> tuple[int, int]:
    """``(campaign_id, contact_id)`` of a valid open-pixel token; InvalidToken otherwise."""
    campaign_id, contact_id = _pair(crm, crm.signer.loads(OPEN_PURPOSE, token, max_age=OPEN_MAX_AGE))
    if campaign_id is None or contact_id is None:
        from crmcore.signing import InvalidToken

        raise InvalidToken("invalid link")
    return campaign_id, contact_id


def _pair(crm: CRM, data: Any) -> tuple[int | None, int | None]:
    from crmcore.signing import InvalidToken

    if not isinstance(data, list) or len(data) != 2 or not all(v is None or isinstance(v, int) for v in data):
        raise InvalidToken("invalid link")
    return data[0], data[1]
