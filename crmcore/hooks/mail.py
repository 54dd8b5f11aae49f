"""Mail hooks: what became of messages queued with ``crmcore.mail.queue_mail``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmcore.hooks import hookspec

if TYPE_CHECKING:
    from crmcore.context import HookContext
    from crmcore.events import MailFailed, MailSent


@hookspec
def crm_mail_sent(event: MailSent, ctx: HookContext) -> None:
    """A queued message was accepted by the mail server.

    Fired by the ``core.send_mail`` job after the SMTP conversation, in a
    transaction of its own. All implementations run; return values are ignored.

    :param event: The message's idempotency key, recipient and Message-ID.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """


@hookspec
def crm_mail_failed(event: MailFailed, ctx: HookContext) -> None:
    """The mail server refused a queued message permanently (5xx); it is not retried.

    Suppress the address or flag the contact here. Fired in a transaction of
    its own. All implementations run; return values are ignored.

    :param event: The key, recipient, SMTP code and error text.
    :param ctx: The unit of work.

    .. versionadded:: 0.1
    """
