"""Value types plugins return from registration hooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from crmcore.crm import CRM


@attrs.frozen(kw_only=True)
class SettingSpec:
    """A setting a plugin reads: ``crm.plugin_setting(plugin, name)``."""

    plugin: str
    name: str
    default: Any
    #: Converts the raw value (a TOML value or an environment string).
    convert: Callable[[Any], Any] = str
    help: str = ""


@attrs.frozen(kw_only=True)
class CustomFieldSpec:
    """A custom field declared by a plugin or bundle."""

    name: str
    label: str
    #: ``text``, ``number``, ``integer``, ``date``, ``bool`` or ``choice``.
    type: str = "text"
    entity: str = "contact"
    choices: tuple[str, ...] | None = None
    required: bool = False
    description: str = ""


@attrs.frozen(kw_only=True)
class JobCall:
    """What a job handler is called with."""

    crm: CRM
    job_id: int
    handler: str
    payload: dict[str, Any]
    #: Stable across retries: use it to make the side effect idempotent.
    idempotency_key: str
    #: 1 on the first delivery, 2 on the first retry, …
    attempt: int
    due_at: datetime


@attrs.frozen(kw_only=True)
class JobHandler:
    """A named handler for outbox jobs and timers."""

    name: str
    func: Callable[[JobCall], None]
    #: Deliveries before the job is dead (dead jobs wait for ``crm jobs retry``).
    max_attempts: int = 8
    #: First retry delay; it doubles on every further attempt (capped at one hour).
    backoff: timedelta = timedelta(seconds=10)
    help: str = ""
    #: Run many of its jobs in one transaction, each in a savepoint, with one commit per
    #: batch (several times faster). Only for handlers whose every effect is a write to
    #: this database: no mail or HTTP (a crash before the batch commits would repeat the
    #: whole batch's deliveries) and no ``independent`` transactions.
    batch: bool = False


@attrs.frozen(kw_only=True)
class PeriodicJob:
    """A job the worker schedules by itself every *every* (dormancy checks, pollers)."""

    name: str
    handler: str
    every: timedelta
    payload: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class PermissionSpec:
    """A permission the core or a plugin declares (``crm_register_permissions``).

    Name it ``<area>.<verb>`` (``ticketing.reply``); *roles* are the built-in
    roles that hold it until an admin changes their grants (admins hold every
    permission).
    """

    name: str
    description: str
    roles: tuple[str, ...] = ()
