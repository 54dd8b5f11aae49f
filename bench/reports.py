"""Benchmark: each core report against the best hand-written SQL for the same figures.

    python bench/reports.py                      # SQLite, ~1,000,000 touchpoints (200,000 contacts)
    python bench/reports.py --quick              # SQLite, ~50,000 touchpoints
    python bench/reports.py --backend postgresql --contacts 1000000 --touches-per-contact 10 --copies 10  # 1M / ~10M

The data is generated once per size (``crmcore.testing.reportdata``) and kept
(SQLite: a file under --workdir; PostgreSQL: a database named after the size),
so later runs start at once. With ``--copies N`` only ``contacts / N``
contacts are generated (in Python) and the database copies their history
``N - 1`` more times itself (``INSERT ... SELECT`` with shifted ids), which
turns an hour of generating 10,000,000 touchpoints into minutes. Each report runs with its default grouping over
all time and over one year; each is timed ``--runs`` times after a warm-up,
alternating with its hand-written query, and the medians are compared. The
hand-written query must return the same rows, or the run fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_queries import HAND_WRITTEN

from crmcore import CRM
from crmcore.reports.rollup import rebuild
from crmcore.testing.reportdata import generate, reset_sequences

RANGES = {"all time": (None, None), "2025": ("2025-01-01", "2025-12-31")}
#: Reports that read the daily rollups (``crmcore.reports.rollup``) for settled days; the
#: hand-written SQL always computes from the raw rows, so their ratio compares the two routes.
ROLLUP_BACKED = {
    "marketing.channels": "rollup+raw",  # sums from the rollup, distinct contacts from the raw rows
    "marketing.products": "rollup",
    "marketing.roi": "rollup",  # attribution from the rollup, costs from ad_spend
    "marketing.ads": "rollup",  # clicks and last-click conversions from the rollups, spend from ad_spend
    "marketing.affiliates": "rollup+raw",  # clicks and conversions from the rollups, distinct contacts raw
}


#: The tables a copy repeats (the rest, such as users, products and ad spend, are shared).
COPIED = ("organization", "contact", "touchpoint", "lifecycle_change", "opportunity", "purchase", "purchase_line",
          "activity", "interaction")  # fmt: skip


def copy_history(connection: Any, copies: int) -> None:
    """Repeat the generated people and their history *copies* - 1 more times, in the database.

    Each copy shifts every id (and every reference to a copied table) past the
    rows before it and gives contacts new addresses; times, keys and amounts
    repeat. Ad spend impressions grow with the audience.
    """
    from crmcore.db import Base

    tables = Base.metadata.tables
    rebuilt = _drop_indexes(connection) if connection.dialect.name == "postgresql" else []
    highest = {name: int(connection.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {name}")).scalar() or 0)
               for name in COPIED}  # fmt: skip
    for number in range(1, copies):
        for name in COPIED:
            table = tables[name]
            names, values = [], []
            for column in table.columns:
                targets = {fk.column.table.name for fk in column.foreign_keys} & set(COPIED)
                if column.name == "id":
                    value = f"id + {number * highest[name]}"
                elif targets:
                    value = f"{column.name} + {number * highest[targets.pop()]}"
                elif name == "contact" and column.name in ("email", "email_normalized"):
                    value = f"'copy{number}.' || {column.name}"
                else:
                    value = column.name
                names.append(column.name)
                values.append(value)
            started = time.perf_counter()
            connection.execute(text(
                f"INSERT INTO {name} ({', '.join(names)}) SELECT {', '.join(values)} FROM {name} "
                f"WHERE id <= {highest[name]}"
            ))  # fmt: skip
            print(f"  copy {number}: {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    connection.execute(text(f"UPDATE ad_spend SET impressions = impressions * {copies}, "
                            f"platform_clicks = platform_clicks * {copies}"))  # fmt: skip
    for definition in rebuilt:  # one sorted build each is much cheaper than 9 copies of inserts into them
        started = time.perf_counter()
        connection.execute(text(definition))
        print(f"  {definition[:60]}... in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def _drop_indexes(connection: Any) -> list[str]:
    """Drop the copied tables' indexes that back no constraint (PostgreSQL); their definitions."""
    connection.exec_driver_sql("SET maintenance_work_mem = '512MB'")
    rows = connection.execute(text(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid::regclass::text = ANY(:tables) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    ), {"tables": list(COPIED)}).all()  # fmt: skip
    for name, _ in rows:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def database(args: argparse.Namespace) -> str:
    """The URL of a migrated database holding the generated data (made on first use)."""
    tag = f"c{args.contacts}_t{args.touches_per_contact:g}_s{args.seed}"
    if args.copies > 1:
        tag += f"_x{args.copies}"
    if args.backend == "sqlite":
        path = Path(args.workdir) / f"crm-bench-{tag}.db"
        url = f"sqlite:///{path}"
        done = path.with_suffix(".done")
        if done.exists():
            return _upgraded(url)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        name = f"crm_bench_{tag}".replace(".", "_")
        admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            ready = False
            if exists:
                probe = create_engine(admin.url.set(database=name))
                with probe.connect() as db:
                    ready = bool(db.execute(text("SELECT to_regclass('bench_done') IS NOT NULL")).scalar())
                probe.dispose()
            if ready:
                return _upgraded(admin.url.set(database=name).render_as_string(hide_password=False))
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        done = None
    crm = CRM(database_url=url, plugins=[], environment="test")
    crm.db_upgrade()
    started = time.perf_counter()

    def progress(counts: dict[str, int]) -> None:
        print(f"\r  generating: {counts.get('contact', 0):,} contacts, {counts.get('touchpoint', 0):,} touchpoints",
              end="", file=sys.stderr, flush=True)  # fmt: skip

    dataset = generate(crm, contacts=args.contacts // args.copies, touches_per_contact=args.touches_per_contact,
                       seed=args.seed, keep=False, chunk=50_000, progress=progress)  # fmt: skip
    print(f"\n  generated in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n} {t}" for t, n in dataset.counts.items()), file=sys.stderr)  # fmt: skip
    if args.copies > 1:
        with crm.engine.begin() as connection:
            copy_history(connection, args.copies)
            reset_sequences(connection)
            # the copies were written behind the services' back too: roll everything up again
            rebuild(connection, crm.settings.timezone, crm.clock.now())
        print(f"  copied {args.copies - 1} times in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    with crm.engine.begin() as connection:
        if crm.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("CREATE TABLE bench_done (id integer)")
    if crm.engine.dialect.name == "postgresql":
        with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    crm.dispose()
    if done is not None:
        done.touch()
    return url


def _upgraded(url: str) -> str:
    """Bring a kept database to the current schema (new index migrations) and return its URL."""
    crm = CRM(database_url=url, plugins=[], environment="test")
    if crm.db_upgrade() and crm.engine.dialect.name == "sqlite":
        with crm.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    crm.dispose()
    return url


def timed_pair(first: Callable[[], Any], second: Callable[[], Any], runs: int) -> tuple[float, Any, float, Any]:
    """Median times of *first* and *second*, run alternately (so load on the machine hits both alike)."""
    first(), second()  # warm-up: caches, compiled statements, the database's pages
    times: tuple[list[float], list[float]] = ([], [])
    results: list[Any] = [None, None]
    for _ in range(runs):
        for index, func in enumerate((first, second)):
            started = time.perf_counter()
            results[index] = func()
            times[index].append(time.perf_counter() - started)
    return statistics.median(times[0]), results[0], statistics.median(times[1]), results[1]


def normalise(rows: list[dict[str, Any]], columns: list[Any]) -> list[tuple[Any, ...]]:
    """Rows converted by the report's own column types, floats to 4 places, in a stable order."""
    out = []
    for row in rows:
        values = [column.convert(row[column.name]) for column in columns]
        out.append(tuple(round(v, 4) if isinstance(v, float) else v for v in values))
    return sorted(out, key=repr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--touches-per-contact", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="Generate contacts / N and let the database copy that history N - 1 more times.",
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10,000 contacts (~50,000 touchpoints), 5 runs")
    parser.add_argument("--only", help="Comma-separated report names.")
    parser.add_argument("--range", choices=("both", *RANGES), default="both", help="Time only this range.")
    parser.add_argument("--workdir", default="/tmp", help="Where SQLite files are kept.")
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.runs = 10_000, 5
    url = database(args)
    crm = CRM(database_url=url, plugins=[], environment="test")
    dialect = "postgresql" if crm.engine.dialect.name == "postgresql" else "sqlite"
    with crm.engine.connect() as connection:
        touchpoints = connection.execute(text("SELECT COUNT(*) FROM touchpoint")).scalar()
        contacts = connection.execute(text("SELECT COUNT(*) FROM contact")).scalar()
    print(f"{dialect}: {contacts:,} contacts, {touchpoints:,} touchpoints; medians of {args.runs} runs\n")
    print(f"{'report':24} {'range':9} {'rows':>5} {'report s':>9} {'hand SQL s':>10} {'ratio':>6}  reads")
    worst = 0.0
    failures = []
    names = args.only.split(",") if args.only else list(HAND_WRITTEN)
    for name in names:
        crm.reports.get(name)  # an unknown name fails here, before any timing
        for label, (start, end) in RANGES.items():
            if args.range not in ("both", label):
                continue
            sql = HAND_WRITTEN[name](dialect, start, end)

            def hand(sql: str = sql) -> list[dict[str, Any]]:
                with crm.engine.connect() as connection:
                    return [dict(r._mapping) for r in connection.execute(text(sql))]

            report_time, result, hand_time, hand_rows = timed_pair(
                lambda n=name, s=start, e=end: crm.reports.run(n, start=s, end=e), hand, args.runs
            )
            columns = list(result.columns)
            hand_rows = [{columns[0].name: r.pop("key"), **r} for r in hand_rows]
            filled = [c.name for c in columns[1:]]
            got = normalise([r for r in result.rows if any(r[c] for c in filled)], columns)
            expected = normalise([r for r in hand_rows if any(r[c] for c in filled)], columns)
            if got != expected:
                failures.append(f"{name} ({label}): the report and the hand-written SQL disagree")
            ratio = report_time / hand_time
            worst = max(worst, ratio)
            reads = ROLLUP_BACKED.get(name, "raw")
            times = f"{report_time:>9.3f} {hand_time:>10.3f} {ratio:>6.2f}"
            print(f"{name:24} {label:9} {len(result.rows):>5} {times}  {reads}", flush=True)
    print(f"\nworst ratio {worst:.2f} (target <= 1.25); reads: what the report reads (the hand SQL reads raw rows)")
    for failure in failures:
        print("FAILED:", failure)
    crm.dispose()
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
