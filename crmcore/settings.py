"""Settings: one attrs object, from keyword arguments, ``CRMCORE_*`` variables or ``crm.toml``.

Precedence, highest first: keyword arguments, environment variables, the TOML
file (``CRMCORE_CONFIG`` or ``./crm.toml``), defaults. Plugin settings live in
``[plugins.<name>]`` tables of the TOML file or ``CRMCORE_<NAME>__<KEY>``
variables and are declared by plugins through ``crm_register_settings``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from crmcore.errors import ConfigError

DEV_SECRET = "crmcore-development-secret-do-not-use"


def _plugins_converter(value: Any) -> tuple[str, ...] | None:
    if value is None or isinstance(value, tuple):
        return value
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    return tuple(str(v) for v in value if str(v))


def _int_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, int):
        value = [value]
    return tuple(sorted(int(v) for v in value))


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@attrs.frozen(kw_only=True)
class Settings:
    """Everything a :class:`~crmcore.CRM` is configured with."""

    #: SQLAlchemy URL; the default is a SQLite file in the working directory.
    database_url: str = "sqlite:///crm.db"
    #: Enabled plugin names; ``None`` enables every installed plugin.
    plugins: tuple[str, ...] | None = attrs.field(default=None, converter=_plugins_converter)
    #: ``development``, ``test`` or ``production``. Only development accepts the default secret.
    environment: str = "development"
    #: Signs tokens, links and cookies. Keep it secret; rotate with ``old_secret_keys``.
    secret_key: str = DEV_SECRET
    #: Earlier secrets still accepted when verifying (key rotation), comma separated.
    old_secret_keys: tuple[str, ...] = attrs.field(default=(), converter=_plugins_converter)
    #: The zone in which reports cut days and periods.
    timezone: str = "UTC"
    #: Default ISO 4217 currency.
    currency: str = "USD"
    #: Region assumed for phone numbers written without a country prefix.
    phone_region: str = "US"
    #: Score at which a lead becomes a prospect by itself (0 turns the rule off).
    qualify_score: int = attrs.field(default=0, converter=int)
    #: Scores whose crossing fires ``crm_lead_score_threshold_crossed``, comma separated.
    score_thresholds: tuple[int, ...] = attrs.field(default=(50,), converter=_int_tuple)
    #: Days without purchase or touchpoint after which a customer is dormant.
    dormant_after_days: int = attrs.field(default=365, converter=int)
    #: Log every hook call with its duration (logger ``crmcore.hooks``).
    trace_hooks: bool = attrs.field(default=False, converter=_bool)
    #: Public base URL of the web app, used in links put into emails.
    base_url: str = "http://127.0.0.1:8000"
    #: Days a signed link in an email keeps working (``crmcore.links``).
    signed_link_max_age_days: int = attrs.field(default=400, converter=int)
    #: Days after an affiliate's click during which a conversion is credited to it.
    affiliate_window_days: int = attrs.field(default=30, converter=int)
    #: Web form submissions allowed per client address per minute.
    form_rate_per_minute: int = attrs.field(default=30, converter=int)
    #: A repeated submission of the same form by the same person within this many seconds is one.
    form_dedupe_seconds: int = attrs.field(default=30, converter=int)
    #: Seconds a process keeps custom field declarations and the active reps (``crmcore.metadata``); 0: no cache.
    metadata_cache_seconds: float = attrs.field(default=5.0, converter=float)
    #: Shared secret a host shop signs ``POST /conversions`` with (HMAC-SHA256); empty turns it off.
    conversion_secret: str = ""
    #: Largest request body the web app accepts.
    web_max_body_bytes: int = attrs.field(default=1_000_000, converter=int)
    #: Mount the staff console under ``/console`` in ``crm.asgi_app()``.
    console_enabled: bool = attrs.field(default=True, converter=_bool)
    #: Hours a console session lasts after sign-in.
    console_session_hours: int = attrs.field(default=12, converter=int)
    #: Mark console cookies ``Secure`` (HTTPS only): ``auto`` means everywhere but development.
    console_secure_cookies: str = "auto"
    #: Sign-in attempts allowed per client address and per email in ``console_login_window`` seconds.
    console_login_attempts: int = attrs.field(default=5, converter=int)
    console_login_window: int = attrs.field(default=300, converter=int)
    #: The console's default language (``en``, ``fa``).
    console_locale: str = "en"
    #: Job backend: ``inline`` (the ``crm worker`` loop) or ``celery``.
    jobs_backend: str = "inline"
    #: Celery broker URL when ``jobs_backend`` is ``celery``.
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Celery queue the dispatcher publishes to and workers consume.
    celery_queue: str = "crmcore"
    #: Jobs per Celery task: a Celery worker claims them together and commits the jobs of
    #: ``batch=True`` handlers together; 1 spreads long jobs most evenly over the workers.
    celery_chunk: int = attrs.field(default=20, converter=int)
    #: Mail transport: ``smtp`` or ``file`` (writes .eml files to ``mail_dir``).
    mail_transport: str = "file"
    mail_dir: str = "mail-out"
    mail_from: str = "CRM <crm@localhost>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = attrs.field(default=25, converter=int)
    smtp_user: str = ""
    smtp_password: str = ""
    #: ``none``, ``starttls`` or ``ssl``.
    smtp_security: str = "none"
    smtp_timeout: float = attrs.field(default=30.0, converter=float)
    #: Per-plugin settings: ``{"ticketing": {"reopen_on_reply": True}}``.
    plugin_settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.environment not in {"development", "test", "production"}:
            raise ConfigError(f"environment must be development, test or production, not {self.environment!r}")
        if self.secret_key == DEV_SECRET and self.environment == "production":
            raise ConfigError(
                "the default secret key is refused outside development: "
                "set CRMCORE_SECRET_KEY (or secret_key in crm.toml)"
            )
        if len(self.secret_key) < 16:
            raise ConfigError("secret_key must be at least 16 characters")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.timezone!r}") from None
        if self.jobs_backend not in {"inline", "celery"}:
            raise ConfigError(f"jobs_backend must be inline or celery, not {self.jobs_backend!r}")
        if self.mail_transport not in {"smtp", "file"}:
            raise ConfigError(f"mail_transport must be smtp or file, not {self.mail_transport!r}")
        if self.console_secure_cookies not in {"auto", "true", "false"}:
            raise ConfigError("console_secure_cookies must be auto, true or false")
        if self.smtp_security not in {"none", "starttls", "ssl"}:
            raise ConfigError("smtp_security must be none, starttls or ssl")

    @property
    def zone(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)

    def for_plugin(self, name: str) -> Mapping[str, Any]:
        """Return the raw settings given for plugin *name* (empty when none)."""
        return self.plugin_settings.get(name, {})

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from the TOML file, the environment and *overrides*."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        plugin_values: dict[str, dict[str, Any]] = {}
        path = config_file or environ.get("CRMCORE_CONFIG")
        if path is None and Path("crm.toml").exists():
            path = "crm.toml"
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file {str(path)!r} does not exist") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
            for plugin, table in (data.pop("plugins", None) or {}).items():
                plugin_values.setdefault(plugin, {}).update(table)
            values.update(data)
        field_names = {f.name for f in attrs.fields(cls)} - {"plugin_settings"}
        for key, raw in environ.items():
            if not key.startswith("CRMCORE_") or key in {"CRMCORE_CONFIG"}:
                continue
            name = key[len("CRMCORE_") :].lower()
            if "__" in name:
                plugin, _, option = name.partition("__")
                plugin_values.setdefault(plugin, {})[option] = raw
            elif name in field_names:
                values[name] = raw
        for plugin, table in dict(overrides.pop("plugin_settings", None) or {}).items():
            plugin_values.setdefault(plugin, {}).update(table)
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - field_names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        try:
            return cls(**values, plugin_settings=plugin_values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid settings: {exc}") from None
