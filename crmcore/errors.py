"""The one error hierarchy of crmcore.

Every error a user can cause derives from :class:`CRMError`. The CLI prints
``str(error)`` on one line and exits 1; the web app maps each class to a 4xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self


class CRMError(Exception):
    """Base class of every error crmcore raises on purpose."""

    #: HTTP status the web app answers with.
    http_status = 400
    #: The plugin and hook that raised it, when it came out of a hook.
    plugin: str | None = None
    hook: str | None = None
    #: For the console's languages: the text marked with ``crmcore.i18n.N_`` and the values of its
    #: placeholders (see :meth:`of`); None shows ``str(error)``.
    message: str | None = None
    values: Mapping[str, Any] = {}
    #: Placeholders holding words the console translates too (a stage, a status), as ``values`` are formatted.
    terms: Mapping[str, str] = {}

    @classmethod
    def of(cls, message: str, /, *, terms: Mapping[str, str] | None = None, **values: Any) -> Self:
        """The error saying *message* (marked with ``N_``) with *values* and *terms* in its placeholders.

        ``str(error)`` is the English text, as ever; the console shows it in
        the page's language, with the *terms* (words such as a stage)
        translated and the *values* formatted the locale's way.
        """
        error = cls(message % {**values, **(terms or {})})
        error.message, error.values, error.terms = message, values, dict(terms or {})
        return error


class ValidationError(CRMError):
    """Input was refused; :attr:`errors` maps each field to its message."""

    http_status = 422

    def __init__(self, errors: Mapping[str, str] | str, message: str | None = None) -> None:
        if isinstance(errors, str):
            errors = {"__all__": errors}
        self.errors: dict[str, str] = dict(errors)
        text = message or "; ".join(
            msg if field == "__all__" else f"{field}: {msg}" for field, msg in self.errors.items()
        )
        super().__init__(text or "invalid input")
        #: Fields whose message was given with :meth:`on`: the message, values and terms to translate it.
        self.messages: dict[str, dict[str, Any]] = {}

    @classmethod
    def on(cls, field: str, message: str, /, *, terms: Mapping[str, str] | None = None, **values: Any) -> Self:
        """Input refused at *field*, saying *message* (marked with ``N_``) with its placeholders filled.

        ``ValidationError.on("stage", N_("no stage %(key)s"), key="won")``:
        :attr:`errors` holds the English text, as ever; the console shows it
        in the page's language, like :meth:`CRMError.of`.
        """
        filled = {**values, **(terms or {})}
        error = cls({field: message % filled})
        error.messages[field] = {"message": message, "values": values, "terms": dict(terms or {}),
                                 "text": message % filled}  # fmt: skip
        return error


class NotFound(CRMError):
    """A record that was asked for by id, email or name does not exist."""

    http_status = 404


class Conflict(CRMError):
    """The operation contradicts the current state (a duplicate, a stale edit)."""

    http_status = 409


class PermissionDenied(CRMError):
    """The acting user may not do this."""

    http_status = 403


class ConfigError(CRMError):
    """Settings, plugins or the database are not usable as configured."""

    http_status = 500


class DatabaseUnavailable(ConfigError):
    """The database cannot be reached right now (down, restarting, network cut); retry later."""

    http_status = 503


class PluginError(CRMError):
    """A plugin failed: at load time, or inside a hook (``raise ... from exc``)."""

    http_status = 500

    def __init__(self, message: str, *, plugin: str | None, hook: str | None = None) -> None:
        where = f"plugin {plugin!r}" if plugin else "a plugin"
        if hook:
            where += f", hook {hook}"
        super().__init__(f"{where}: {message}")
        self.plugin = plugin
        self.hook = hook


__all__ = [
    "CRMError",
    "ConfigError",
    "Conflict",
    "NotFound",
    "PermissionDenied",
    "PluginError",
    "ValidationError",
]
