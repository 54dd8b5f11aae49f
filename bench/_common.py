"""Shared helpers for the benchmarks: medians, a results table, scratch databases."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("CRMCORE_BENCH_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def median_time(func: Callable[[], Any], runs: int = 5) -> float:
    """Median wall time of *runs* calls of *func*, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scratch_sqlite(name: str) -> str:
    """A fresh SQLite file URL in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="crmbench-"))
    return f"sqlite:///{folder / name}"


def scratch_postgresql(name: str) -> str | None:
    """A fresh PostgreSQL database URL, or None when the server is not reachable."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except Exception as exc:
        print(f"  (PostgreSQL not reachable: {str(exc).splitlines()[0]})")
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


class Report:
    """Collects rows of (benchmark, result, baseline, ratio, target) and prints them."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, name: str, value: float, unit: str, baseline: float | None = None, target: str = "",
            higher_is_better: bool = True) -> None:  # fmt: skip
        ratio = ""
        if baseline:
            ratio = f"{value / baseline:.2f}" if higher_is_better else f"{value / baseline:.2f}x"
        base = f"{baseline:,.1f} {unit}" if baseline else ""
        self.rows.append((name, f"{value:,.1f} {unit}", base, ratio, target))
        print(f"  {name}: {value:,.1f} {unit}" + (f"  (baseline {base}, ratio {ratio})" if baseline else ""))

    def print(self) -> None:
        print(f"\n{self.title}\n")
        print("| Benchmark | Result | Baseline | Ratio | Target |")
        print("| --- | --- | --- | --- | --- |")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
