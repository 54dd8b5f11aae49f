"""Throwaway databases for tests: SQLite files, PostgreSQL and MariaDB databases.

Each backend keeps one migrated *template* per plugin set per test session,
and every test gets a fresh copy: a file copy on SQLite, ``CREATE DATABASE
... TEMPLATE`` on PostgreSQL, and truncation back to the migrated seed rows
on MariaDB (which has no template databases).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

BACKENDS = ("sqlite", "postgresql", "mariadb")
DEFAULT_ADMIN_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
}


def configured_backends() -> list[str]:
    """Backends named in ``CRMCORE_TEST_DATABASES`` (default: sqlite)."""
    names = [n.strip().lower() for n in os.environ.get("CRMCORE_TEST_DATABASES", "sqlite").split(",") if n.strip()]
    aliases = {"postgres": "postgresql", "pg": "postgresql", "mysql": "mariadb"}
    names = [aliases.get(n, n) for n in names]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise ValueError(f"CRMCORE_TEST_DATABASES names unknown backend(s): {', '.join(unknown)}")
    return names


def admin_url(backend: str) -> URL:
    """The server URL tests create their databases through (``CRMCORE_TEST_<BACKEND>_URL``)."""
    return make_url(os.environ.get(f"CRMCORE_TEST_{backend.upper()}_URL", DEFAULT_ADMIN_URLS[backend]))


def unreachable_reason(backend: str) -> str | None:
    """None when the server answers, else a one-line reason to skip."""
    if backend == "sqlite":
        return None
    url = admin_url(backend)
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        first = str(exc).splitlines()[0]
        return f"{backend} at {url.render_as_string(hide_password=True)} is not reachable: {first}"
    return None


class DatabasePool:
    """Makes migrated test databases for one backend; cleans up at the end of the session."""

    def __init__(self, backend: str, workdir: Path, migrate: Callable[[str, Sequence[Any]], None]) -> None:
        self.backend = backend
        self.workdir = workdir
        self.migrate = migrate
        self.run_id = uuid.uuid4().hex[:8]
        self._templates: dict[tuple[str, ...], Any] = {}
        self._created: list[str] = []

    def _template(self, key: tuple[str, ...], plugins: Sequence[Any]) -> Any:
        if key in self._templates:
            return self._templates[key]
        name = f"crmtpl_{self.run_id}_{len(self._templates)}"
        if self.backend == "sqlite":
            path = self.workdir / f"{name}.db"
            url = f"sqlite:///{path}"
            self.migrate(url, plugins)
            create_engine(url).dispose()
            template: Any = path
        elif self.backend == "postgresql":
            self._create(name)
            self.migrate(self._url(name), plugins)
            template = name
        else:
            self._create(name)
            url = self._url(name)
            self.migrate(url, plugins)
            template = (name, _seed_rows(url))
        self._templates[key] = template
        return template

    @contextmanager
    def database(self, plugins: Sequence[Any]) -> Iterator[str]:
        """A fresh, migrated database URL for one test."""
        key = tuple(sorted(p if isinstance(p, str) else getattr(p, "__name__", repr(p)) for p in plugins))
        template = self._template(key, plugins)
        if self.backend == "sqlite":
            path = self.workdir / f"crmtest_{uuid.uuid4().hex[:10]}.db"
            shutil.copyfile(template, path)
            yield f"sqlite:///{path}"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        elif self.backend == "postgresql":
            name = f"crmtest_{self.run_id}_{uuid.uuid4().hex[:8]}"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
            try:
                yield self._url(name)
            finally:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            name, seeds = template
            url = self._url(name)
            _reset_to_seeds(url, seeds)
            yield url

    def _url(self, name: str) -> str:
        return admin_url(self.backend).set(database=name).render_as_string(hide_password=False)

    def _admin(self, sql: str) -> None:
        engine = create_engine(admin_url(self.backend), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(sql))
        engine.dispose()

    def _create(self, name: str) -> None:
        quote = '"' if self.backend == "postgresql" else "`"
        self._admin(f"CREATE DATABASE {quote}{name}{quote}")
        self._created.append(name)

    def close(self) -> None:
        """Drop every database this pool created."""
        for name in self._created:
            if self.backend == "postgresql":
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                self._admin(f"DROP DATABASE IF EXISTS `{name}`")


def _seed_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """The rows migrations put in (default pipeline and the like), to restore per test."""
    engine = create_engine(url)
    seeds: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM `{table}`"))]
            seeds[table] = rows
    engine.dispose()
    return seeds


def _reset_to_seeds(url: str, seeds: dict[str, list[dict[str, Any]]]) -> None:
    from sqlalchemy import MetaData

    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as connection:
        connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            seeded = seeds.get(table.name, [])
            if seeded or connection.execute(text(f"SELECT EXISTS(SELECT 1 FROM `{table.name}`)")).scalar():
                connection.execute(text(f"TRUNCATE TABLE `{table.name}`"))
                if seeded:
                    connection.execute(table.insert(), seeded)
        connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    engine.dispose()
