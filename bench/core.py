"""Core benchmarks (issue 2): bulk capture, single capture, hook dispatch, CLI start-up.

Run: python bench/core.py [--quick] [--startup-only]. Each figure is printed beside a baseline
measured in the same run (raw sqlite3, plain SQLAlchemy, bare pluggy, a bare
Python process).
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import ROOT, Report, median_time, scratch_sqlite

from crmcore import CRM, hookimpl
from crmcore.plugins import PluginInfo


class Listener:
    """One of four plugins implementing the lead-captured hook (does a little work)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.plugin_info = PluginInfo(name=f"listener{n}")

    @hookimpl
    def crm_lead_captured(self, event, ctx):
        self.seen += 1


def four_plugins() -> list[Listener]:
    return [Listener(n) for n in range(4)]


def lead_rows(count: int, offset: int = 0) -> list[dict[str, str]]:
    return [{"email": f"lead{offset + n}@example.com", "first_name": f"Lead{n}", "source": "bench"}
            for n in range(count)]  # fmt: skip


def bench_bulk(report: Report, count: int) -> None:
    url = scratch_sqlite("bulk.db")
    listeners = four_plugins()
    crm = CRM(database_url=url, plugins=listeners, environment="test")
    crm.db_upgrade()
    rows = lead_rows(count)
    csv_path = url.removeprefix("sqlite:///") + ".csv"
    with open(csv_path, "w", encoding="utf-8") as out:
        out.write("email,first_name,source\n")
        out.writelines(f"{r['email']},{r['first_name']},{r['source']}\n" for r in rows)
    start, cpu = time.perf_counter(), time.process_time()
    result = crm.contacts.import_csv(csv_path)  # the batched service path: bulk inserts, hooks per lead
    service_rate = count / (time.perf_counter() - start)
    service_cpu_rate = count / (time.process_time() - cpu)
    assert result.created == count, result
    assert sum(listener.seen for listener in listeners) == 4 * count  # every hook ran for every lead
    small = min(count, 5000)
    other = CRM(database_url=scratch_sqlite("many.db"), plugins=four_plugins(), environment="test")
    other.db_upgrade()
    start = time.perf_counter()
    other.leads.capture_many(lead_rows(small))
    many_rate = small / (time.perf_counter() - start)

    raw_path = url.removeprefix("sqlite:///") + ".raw"
    connection = sqlite3.connect(raw_path)
    connection.execute("CREATE TABLE contact (id INTEGER PRIMARY KEY, email TEXT, email_normalized TEXT UNIQUE, "
                       "first_name TEXT, source TEXT, stage TEXT, created_at TEXT)")  # fmt: skip
    now = "2026-01-01 00:00:00"
    values = [(r["email"], r["email"].lower(), r["first_name"], r["source"], "lead", now) for r in rows]
    start, cpu = time.perf_counter(), time.process_time()
    with connection:
        connection.executemany("INSERT INTO contact (email, email_normalized, first_name, source, stage, created_at) "
                               "VALUES (?, ?, ?, ?, ?, ?)", values)  # fmt: skip
    raw_rate = count / (time.perf_counter() - start)
    raw_cpu_rate = count / (time.process_time() - cpu)
    report.add(f"bulk import of {count:,} leads (crm.contacts.import_csv), 4 plugins (leads/s)", service_rate, "/s",
               raw_rate, ">= 0.10")  # fmt: skip
    report.add("the same bulk import per CPU-second (load-independent; leads/s)", service_cpu_rate, "/s", raw_cpu_rate)
    report.add(f"capture_many of {small:,} leads, one savepoint each, 4 plugins (leads/s)", many_rate, "/s", raw_rate,
               "(the API path, not the bulk path)")  # fmt: skip


def bench_single(report: Report, count: int) -> None:
    from sqlalchemy.orm import sessionmaker

    from crmcore.db import create_engine
    from crmcore.models import Contact

    url = scratch_sqlite("single.db")
    crm = CRM(database_url=url, plugins=four_plugins(), environment="test")
    crm.db_upgrade()
    counter = iter(range(10**9))

    def one_capture() -> None:
        crm.leads.capture(email=f"single{next(counter)}@example.com", first_name="Ada")

    plain_engine = create_engine(url)
    factory = sessionmaker(plain_engine)

    def plain_insert() -> None:
        n = next(counter)
        now = crm.clock.now()
        with factory() as session, session.begin():
            session.add(Contact(email=f"plain{n}@example.com", email_normalized=f"plain{n}@example.com",
                                first_name="Ada", stage="lead", created_at=now, updated_at=now,
                                stage_changed_at=now, score=0, custom={}))  # fmt: skip

    one_capture(), plain_insert()  # warm up
    # Alternating rounds, so a change in the machine's load weighs on both sides alike.
    rounds = [(median_time(one_capture, runs=count), median_time(plain_insert, runs=count)) for _ in range(5)]
    service = statistics.median(r[0] for r in rounds)
    plain = statistics.median(r[1] for r in rounds)
    report.add("single capture in its own transaction, 4 plugins (captures/s)", 1 / service, "/s", 1 / plain,
               ">= 0.5")  # fmt: skip


def bench_dispatch(report: Report, calls: int) -> None:
    import pluggy

    from crmcore.hooks import hookspec
    from crmcore.plugins import PluginHost, PluginInfo

    class Spec:
        @hookspec
        def crm_bench_event(self, event, ctx):
            """Benchmark hook."""

    for impls in (1, 5, 20):
        plugins = []
        for n in range(impls):
            info = PluginInfo(name=f"P{n}", hookspecs=(Spec,) if n == 0 else ())
            attributes = {"crm_bench_event": hookimpl(lambda self, event, ctx: None), "plugin_info": info}
            plugin = type(f"P{n}", (), attributes)()
            plugins.append(plugin)
        host = PluginHost(plugins)
        bare = pluggy.PluginManager("crmcore")
        bare.add_hookspecs(Spec)
        for plugin in plugins:
            bare.register(type(plugin)())
        hook = bare.hook.crm_bench_event

        def ours(host: PluginHost = host) -> None:
            for _ in range(calls):
                host.call("crm_bench_event", event=1, ctx=2)

        def theirs(hook: Any = hook) -> None:
            for _ in range(calls):
                hook(event=1, ctx=2)

        ours_t, bare_t = median_time(ours, 7), median_time(theirs, 7)
        report.add(f"hook dispatch, {impls} impl(s) (µs per call)", ours_t / calls * 1e6, "µs",
                   bare_t / calls * 1e6, "<= 1.5x", higher_is_better=False)  # fmt: skip


def bench_startup(report: Report, runs: int) -> None:
    """``crm contact show`` as a whole process, beside bare and SQLAlchemy-only processes.

    The commands take turns in each round, so a change in the machine's load
    hits all of them alike; a first untimed round writes the bytecode caches
    (as an install does, whatever ``PYTHONDONTWRITEBYTECODE`` says).
    """
    url = scratch_sqlite("startup.db")
    crm = CRM(database_url=url, environment="test")
    crm.db_upgrade()
    crm.leads.capture(email="ada@example.com")
    crm.dispose()
    crm_bin = os.path.join(os.path.dirname(sys.executable), "crm")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    commands = {
        "show": [crm_bin, "--database-url", url, "contact", "show", "ada@example.com"],
        "bare": [sys.executable, "-c", "pass"],
        "sqlalchemy": [sys.executable, "-c", "import sqlalchemy"],
        "orm": [sys.executable, "-c", "import sqlalchemy.orm"],
        # The floor of any CLI built on the product's fixed stack: the libraries a command cannot avoid.
        "stack": [sys.executable, "-c", "import sqlalchemy.orm, click, pluggy, attr"],
    }
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, argv in commands.items():
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
            elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_:
                wall[name].append(elapsed * 1000)
                cpu[name].append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    show, bare, sqlalchemy, orm, stack = (statistics.median(wall[name]) for name in commands)
    report.add("start-up: `crm contact show EMAIL`, 4 plugins and the examples installed (ms)", show, "ms",
               sqlalchemy, "< 300 ms", higher_is_better=False)  # fmt: skip
    report.add("start-up: `python -c pass` (ms)", bare, "ms")
    report.add("start-up: `python -c 'import sqlalchemy.orm'` (ms)", orm, "ms")
    report.add("start-up: `crm contact show EMAIL` against the stack's imports "
               "(`python -c 'import sqlalchemy.orm, click, pluggy, attr'`) (ms)", show, "ms", stack,
               higher_is_better=False)  # fmt: skip
    # CPU time (user + system) is what load changes least on a shared machine.
    report.add("start-up CPU time: `crm contact show EMAIL` (ms)", statistics.median(cpu["show"]), "ms",
               statistics.median(cpu["sqlalchemy"]), higher_is_better=False)  # fmt: skip
    report.add("start-up CPU time: `python -c 'import sqlalchemy.orm'` (ms)", statistics.median(cpu["orm"]), "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--startup-only", action="store_true", help="only the CLI start-up figures")
    options = parser.parse_args()
    report = Report("crmcore core benchmarks")
    if not options.startup_only:
        bench_bulk(report, 5_000 if options.quick else 100_000)
        bench_single(report, 50 if options.quick else 300)
        bench_dispatch(report, 2_000 if options.quick else 50_000)
    bench_startup(report, 3 if options.quick else 15)
    report.print()


if __name__ == "__main__":
    main()
