"""The crmcore pytest plugin: fixtures for a throwaway CRM on every configured database.

``CRMCORE_TEST_DATABASES=sqlite,postgresql,mariadb`` runs every test that uses
``crm`` on each; a server that is not reachable skips its tests with the
reason (or fails them when ``CRMCORE_TEST_REQUIRE_SERVERS=1``, as in CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from crmcore.clock import FrozenClock
from crmcore.testing.databases import DatabasePool, configured_backends, unreachable_reason
from crmcore.testing.helpers import HookCalls, run_cli


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "databases(*names): run this test only on these backends")


def _migrate(url: str, plugins: Sequence[Any]) -> None:
    from crmcore.crm import CRM
    from crmcore.migrate import upgrade

    crm = CRM(database_url=url, plugins=list(plugins), environment="test")
    try:
        upgrade(crm)
    finally:
        crm.dispose()


class _Pools:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pools: dict[str, DatabasePool] = {}
        self.reasons: dict[str, str | None] = {}

    def get(self, backend: str) -> DatabasePool:
        import os

        if backend not in self.reasons:
            self.reasons[backend] = unreachable_reason(backend)
        reason = self.reasons[backend]
        if reason is not None:
            if os.environ.get("CRMCORE_TEST_REQUIRE_SERVERS") == "1":
                pytest.fail(f"{reason} (CRMCORE_TEST_REQUIRE_SERVERS=1)")
            pytest.skip(reason)
        if backend not in self.pools:
            self.pools[backend] = DatabasePool(backend, self.workdir, _migrate)
        return self.pools[backend]

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


@pytest.fixture(scope="session")
def crm_database_pools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pools]:
    """Session-wide makers of migrated test databases, one per backend."""
    pools = _Pools(tmp_path_factory.mktemp("crmcore-db"))
    yield pools
    pools.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "crm_backend" in metafunc.fixturenames:
        backends = configured_backends()
        marker = metafunc.definition.get_closest_marker("databases")
        if marker is not None:
            backends = [b for b in backends if b in marker.args] or list(marker.args[:1])
        metafunc.parametrize("crm_backend", backends, scope="function")


@pytest.fixture
def crm_plugins() -> list[Any]:
    """Plugins the ``crm`` fixture enables; override in your conftest (default: none)."""
    return []


@pytest.fixture
def crm_settings() -> dict[str, Any]:
    """Extra settings for the ``crm`` fixture; override in your conftest."""
    return {}


@pytest.fixture
def clock() -> FrozenClock:
    """A frozen clock at 2026-01-05 09:00 UTC (a Monday); advance it to fire timers."""
    return FrozenClock("2026-01-05T09:00:00+00:00")


@pytest.fixture
def crm_factory(
    crm_backend: str, crm_database_pools: _Pools, clock: FrozenClock, crm_settings: dict[str, Any]
) -> Iterator[Callable[..., Any]]:
    """Make CRMs on fresh migrated databases: ``crm_factory(plugins=[...], **settings)``."""
    from crmcore.crm import CRM

    with ExitStack() as stack:
        made: list[CRM] = []

        def make(plugins: Sequence[Any] = (), **settings: Any) -> CRM:
            pool = crm_database_pools.get(crm_backend)
            url = stack.enter_context(pool.database(list(plugins)))
            options = {"environment": "test", **crm_settings, **settings}
            crm = CRM(database_url=url, plugins=list(plugins), clock=options.pop("clock", clock), **options)
            made.append(crm)
            return crm

        yield make
        for crm in made:
            crm.dispose()


@pytest.fixture
def crm(crm_factory: Callable[..., Any], crm_plugins: list[Any]) -> Any:
    """A throwaway CRM with ``crm_plugins`` enabled, migrated, on a fresh database."""
    return crm_factory(plugins=crm_plugins)


@pytest.fixture
def crm_url(crm: Any) -> str:
    """The ``crm`` fixture's database URL (with password), for subprocesses."""
    return str(crm.engine.url.render_as_string(hide_password=False))


@pytest.fixture
def hook_calls(crm: Any) -> Iterator[HookCalls]:
    """Every hook call the ``crm`` fixture makes: ``hook_calls.names()``, ``.of(name)``."""
    calls = HookCalls(crm)
    yield calls
    calls.close()


@pytest.fixture
def cli(crm: Any) -> Callable[..., Any]:
    """Run ``crm`` commands against the ``crm`` fixture: ``cli("contact", "list")``."""

    def invoke(*args: str, input: str | None = None) -> Any:
        return run_cli(crm, args, input=input)

    return invoke


@pytest.fixture
def run_due_jobs(crm: Any) -> Callable[..., int]:
    """Run the jobs due at the clock's time: ``run_due_jobs()`` returns how many ran."""

    def run(limit: int | None = None) -> int:
        return int(crm.jobs.run_due(limit=limit))

    return run


@pytest.fixture
def http(crm: Any) -> Iterator[Any]:
    """An ``httpx.Client`` talking to the ``crm`` fixture's web app, served by a real uvicorn."""
    import httpx

    from crmcore.testing.server import live_server

    with live_server(crm.asgi_app()) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A real SMTP server on 127.0.0.1; ``smtp_server.messages`` is what arrived."""
    from crmcore.testing.smtp import SMTPSink

    sink = SMTPSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_settings(smtp_server: Any) -> dict[str, Any]:
    """Settings that point a CRM at ``smtp_server`` (merge into ``crm_settings``)."""
    return {"mail_transport": "smtp", "smtp_host": smtp_server.host, "smtp_port": smtp_server.port}
