"""The frozen events the email marketing hooks receive: ids and plain values, never live rows."""

from __future__ import annotations

from datetime import datetime

import attrs


@attrs.frozen(kw_only=True)
class CampaignMessageSent:
    """A campaign message was accepted by the mail server for one recipient."""

    campaign_id: int
    campaign: str
    recipient_id: int
    contact_id: int | None
    email: str
    message_id: str
    variant: str | None
    occurred_at: datetime
