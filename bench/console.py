"""Benchmark: the console's contact page and search on PostgreSQL, beside hand-written queries.

    python bench/console.py                          # 50,000 contacts, 250,000 touchpoints (a minute or two)
    python bench/console.py --contacts 1000000       # the target: 1,000,000 contacts, 5,000,000 touchpoints

A rep of a ten-team sales floor signs in; the benchmark times the whole console
page (``GET /console/contacts/ID`` and ``GET /console/search?q=...`` through the
ASGI app, rendering included: what the rep waits for, minus the network) and the
hand-written SQL that fetches the same data in one connection (the contact row
with the reach check, tags, owner, the last 200 touchpoints for the score, the
first timeline page, the opportunities and stages; for search the same matching
and reach predicates). Beside the whole page, its *data* alone: the calls the
page makes for its records (``contact_page_data``, ``search_hits``), in process
for the signed-in rep, with no HTTP, session check or rendering. Medians and
95th percentiles; the ratios are over the hand-written SQL; the three are timed
in turn on the same inputs. Data is generated once per size with
``generate_series`` and kept in a database named after the size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PG_ADMIN, Report

from crmcore import CRM

SECRET = "bench-console-secret-key-0123456789"
REPS, TEAMS = 50, 10
FIRST = ["Ali", "Sara", "Reza", "Maryam", "Omid", "Leila", "Nima", "Zahra", "Hamid", "Nadia", "Karim", "Yasmin"]
LAST = ["Ahmadi", "Karimi", "Hosseini", "Rahimi", "Moradi", "Jafari", "Haddad", "Mansour", "Saleh", "Nasser"]


def database(contacts: int, touches: int) -> str:
    """A migrated PostgreSQL database with the generated data (made on first use)."""
    name = f"crm_bench_console_c{contacts}_t{touches}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            probe = create_engine(url)
            with probe.connect() as db:
                ready = db.execute(text("SELECT to_regclass('bench_done') IS NOT NULL")).scalar()
            probe.dispose()
            if ready:
                return url
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    crm = CRM(database_url=url, plugins=[], environment="test", secret_key=SECRET)
    crm.db_upgrade()
    started = time.perf_counter()
    first = "ARRAY[" + ",".join(f"'{n}'" for n in FIRST) + "]"
    last = "ARRAY[" + ",".join(f"'{n}'" for n in LAST) + "]"
    statements = [
        f"INSERT INTO team (id, name) SELECT t, 'team ' || t FROM generate_series(1, {TEAMS}) t",
        f"""INSERT INTO crm_user (id, email, name, role, team_id, active, created_at, session_epoch)
            SELECT u, 'rep' || u || '@example.com', 'Rep ' || u, 'rep', 1 + (u - 1) % {TEAMS}, true, now(), 0
            FROM generate_series(1, {REPS}) u""",
        f"""INSERT INTO contact (id, email, email_normalized, first_name, last_name, owner_id, stage,
                                 stage_changed_at, custom, score, do_not_contact, do_not_track, created_at,
                                 updated_at, last_activity_at, phone_normalized)
            SELECT c, 'c' || c || '@example.com', 'c' || c || '@example.com',
                   ({first})[1 + c % {len(FIRST)}], ({last})[1 + (c / 7) % {len(LAST)}] || (c % 997),
                   1 + c % {REPS}, (ARRAY['lead','prospect','customer'])[1 + c % 3],
                   now() - (c % 900) * interval '1 hour', '{{}}', 0, false, false,
                   now() - (c % 900) * interval '1 hour', now(), now(), '+98912' || lpad((c % 10000000)::text, 7, '0')
            FROM generate_series(1, {contacts}) c""",
        f"""INSERT INTO touchpoint (id, contact_id, kind, occurred_at, source, quantity, details)
            SELECT t, 1 + t % {contacts}, (ARRAY['visit','email_open','email_click','form','ad_click'])[1 + t % 5],
                   now() - (t % 5000) * interval '1 hour', (ARRAY['google','newsletter','partner'])[1 + t % 3],
                   1, '{{}}'
            FROM generate_series(1, {contacts * touches}) t""",
        f"""INSERT INTO interaction (id, contact_id, kind, subject, occurred_at, user_id)
            SELECT i, 1 + (i * 2) % {contacts}, 'call', 'Call ' || i, now() - (i % 3000) * interval '1 hour',
                   1 + i % {REPS}
            FROM generate_series(1, {contacts // 2}) i""",
        f"""INSERT INTO lifecycle_change (id, contact_id, from_stage, to_stage, reason, occurred_at)
            SELECT c, c, NULL, 'lead', 'created', now() - (c % 900) * interval '1 hour'
            FROM generate_series(1, {contacts}) c""",
    ]
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
            print(f"  {statement.split()[2]} done after {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for table in ("team", "crm_user", "contact", "touchpoint", "interaction", "lifecycle_change"):
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"(SELECT max(id) FROM {table}))"))  # fmt: skip
    pipeline = crm.sales.stages()
    with engine.begin() as connection:
        connection.execute(text(f"""
            INSERT INTO opportunity (name, contact_id, pipeline_id, stage_id, amount, currency, status, owner_id,
                                     created_at, stage_entered_at)
            SELECT 'Deal ' || c, c, {pipeline[0].pipeline_id}, {pipeline[0].id}, 100 + c % 900, 'USD', 'open',
                   1 + c % {REPS}, now(), now()
            FROM generate_series(1, {contacts}, 10) c"""))  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
        connection.execute(text("CREATE TABLE bench_done (at timestamptz)"))
    engine.dispose()
    crm.dispose()
    print(f"  generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return url


#: The contact page's data, hand-written: what a careful engineer would send for the same page.
HAND_CONTACT = [
    """SELECT c.* FROM contact c WHERE c.id = :id AND (c.owner_id = :me OR c.owner_id IN
         (SELECT id FROM crm_user WHERE team_id = :team))""",
    "SELECT t.name FROM tag t JOIN contact_tag ct ON ct.tag_id = t.id WHERE ct.contact_id = :id ORDER BY t.name",
    "SELECT id, name, email FROM crm_user WHERE id = (SELECT owner_id FROM contact WHERE id = :id)",
    """SELECT kind, occurred_at FROM touchpoint WHERE contact_id = :id ORDER BY occurred_at DESC LIMIT 200""",
    """(SELECT occurred_at AS at, 'stage' AS kind, to_stage AS text FROM lifecycle_change WHERE contact_id = :id
         ORDER BY occurred_at DESC LIMIT 21)
       UNION ALL (SELECT occurred_at, kind, source FROM touchpoint WHERE contact_id = :id
         ORDER BY occurred_at DESC LIMIT 21)
       UNION ALL (SELECT occurred_at, kind, subject FROM interaction WHERE contact_id = :id
         ORDER BY occurred_at DESC LIMIT 21)
       UNION ALL (SELECT purchased_at, 'purchase', currency FROM purchase WHERE contact_id = :id
         ORDER BY purchased_at DESC LIMIT 21)
       ORDER BY at DESC LIMIT 21""",
    """SELECT o.* FROM opportunity o WHERE o.contact_id = :id AND (o.owner_id = :me OR o.owner_id IN
         (SELECT id FROM crm_user WHERE team_id = :team)) ORDER BY o.id DESC LIMIT 20""",
    "SELECT id, name FROM pipeline_stage WHERE pipeline_id = (SELECT id FROM pipeline WHERE is_default)",
]

HAND_SEARCH = [
    """SELECT * FROM contact WHERE erased_at IS NULL AND merged_into_id IS NULL
         AND (owner_id = :me OR owner_id IN (SELECT id FROM crm_user WHERE team_id = :team))
         AND (email_normalized LIKE :pattern OR first_name ILIKE :pattern OR last_name ILIKE :pattern)
       ORDER BY id DESC LIMIT 20""",
    "SELECT * FROM organization WHERE name ILIKE :pattern OR domain ILIKE :pattern ORDER BY name LIMIT 20",
    """SELECT * FROM opportunity WHERE name ILIKE :pattern
         AND (owner_id = :me OR owner_id IN (SELECT id FROM crm_user WHERE team_id = :team))
       ORDER BY id DESC LIMIT 20""",
]


def alternated(runs: list[Callable[[Any], Any]], inputs: list[Any]) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and CPU times in ms of each of *runs* on each input, in an order that rotates from input to input.

    Each input is fetched by every run, each in turn first, so all meet the
    same cache state (whoever goes first reads the rows from disk) and the
    same machine load. CPU time is this process's (all its threads: the test
    client's, the event loop's, the worker's), less sensitive to the load of
    a shared machine than wall time; the database server's is not in it.
    """
    for run in runs:
        run(inputs[0])
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    for n, value in enumerate(inputs):
        for k in range(len(runs)):
            index = (n + k) % len(runs)
            start, used = time.perf_counter(), time.process_time()
            runs[index](value)
            wall[index].append((time.perf_counter() - start) * 1000)
            cpu[index].append((time.process_time() - used) * 1000)
    return wall, cpu


def split(client: Any, paths: list[str], data: str) -> list[tuple[str, float, float]]:
    """Where the page's time goes: (part, median wall ms, median CPU ms of its thread) over *paths*.

    Times each part of the request in the thread that runs it: the test
    client's request (its thread's CPU: building the request, the cookie jar,
    waiting on the app), the ASGI app as the event loop runs it (routing,
    middleware, the hand-off to a worker thread and back), the console's
    wrapper in the worker thread, and inside it the session cookie, the
    session's user and grants (a query), the page's data (*data*: the name of
    the view's data function) and the rendering. Timers are put around those
    functions for this run only.
    """
    from crmcore.console import app, auth, views

    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}

    def timed(module: Any, name: str, part: str) -> None:
        inner = getattr(module, name)

        def timer(*args: Any, **kwargs: Any) -> Any:
            start, used = time.perf_counter(), time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                wall.setdefault(part, []).append((time.perf_counter() - start) * 1000)
                cpu.setdefault(part, []).append((time.thread_time() - used) * 1000)

        setattr(module, name, timer)

    parts = [(client, "get", "whole request (test client; CPU: its thread only)"),
             (app, "_serve", "  worker thread: console wrapper (_serve)"),
             (auth, "read_session", "    session cookie (signature)"),
             (auth, "session_grants", "    session's user and grants (1 query)"),
             (views, data, f"    data ({data})"),
             (views, "page", "    rendering (Jinja2)")]  # fmt: skip
    originals = [(module, name, getattr(module, name)) for module, name, _ in parts]
    transport, asgi = client._transport, client._transport.app

    loop = "  ASGI app (event loop; CPU: its thread only)"

    async def loop_side(scope: Any, receive: Any, send: Any) -> None:
        start, used = time.perf_counter(), time.thread_time()
        await asgi(scope, receive, send)
        wall.setdefault(loop, []).append((time.perf_counter() - start) * 1000)
        cpu.setdefault(loop, []).append((time.thread_time() - used) * 1000)

    for module, name, part in parts:
        timed(module, name, part)
    transport.app = loop_side
    try:
        for path in paths:
            client.get(path)
    finally:
        transport.app = asgi
        for module, name, original in originals:
            setattr(module, name, original)
    order = [parts[0][2], loop, *(part for _, _, part in parts[1:])]
    return [(part, statistics.median(wall[part]), statistics.median(cpu[part])) for part in order]


def p95(values: list[float]) -> float:
    """The 95th percentile."""
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--touches-per-contact", type=int, default=5)
    parser.add_argument("--samples", type=int, default=60, help="Pages timed per benchmark.")
    parser.add_argument("--split", action="store_true", help="Then time each part of the pages (another run).")
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from crmcore.console.auth import SESSION_COOKIE, issue_session
    from crmcore.console.views import contact_page_data, search_hits
    from crmcore.context import Actor

    url = database(args.contacts, args.touches_per_contact)
    crm = CRM(database_url=url, plugins=[], environment="test", secret_key=SECRET, console_secure_cookies="false")
    crm.db_upgrade()  # a database made by an older version gets the newer indexes (trigram search)
    rep = crm.users.get(7)
    token, _ = issue_session(crm, rep)
    client = TestClient(crm.asgi_app(), base_url="http://testserver")
    client.__enter__()  # one event loop for every request, as a real server has
    client.cookies.set(SESSION_COOKIE, token)
    rng = random.Random(3)
    team_owners = [u for u in range(1, REPS + 1) if 1 + (u - 1) % TEAMS == rep.team_id]
    mine = [c for c in (rng.randrange(1, args.contacts) for _ in range(20_000)) if 1 + c % REPS in team_owners]
    contacts = mine[: args.samples]
    terms = [f"{rng.choice(LAST)[:4].lower()}{rng.randrange(10, 99)}" for _ in range(args.samples)]
    hand = create_engine(url)
    report = Report(f"Console on PostgreSQL: {args.contacts:,} contacts, "
                    f"{args.contacts * args.touches_per_contact:,} touchpoints (p95 in ms)")  # fmt: skip

    def page(path: str) -> None:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)

    def by_hand(statements: list[str], params: dict[str, Any]) -> None:
        with hand.connect() as connection:
            for statement in statements:
                connection.execute(text(statement), params).all()

    who = {"me": rep.id, "team": rep.team_id}
    actor = Actor(user_id=rep.id, label=f"user:{rep.email}", role=rep.role, team_id=rep.team_id)
    with crm.acting_as(actor):  # the rep's grants are read once, as the page reads them with the session
        measured = {
            "contact page": alternated([lambda c: page(f"/console/contacts/{c}"),
                                        lambda c: contact_page_data(crm, c),
                                        lambda c: by_hand(HAND_CONTACT, {"id": c, **who})], contacts),
            "search": alternated([lambda q: page(f"/console/search?q={q}"),
                                  lambda q: search_hits(crm, q),
                                  lambda q: by_hand(HAND_SEARCH, {"pattern": f"%{q}%", **who})], terms),
        }  # fmt: skip
    for name, ((paged, data, handed), cpu) in measured.items():
        page_cpu, data_cpu, hand_cpu = (statistics.median(times) for times in cpu)
        print(f"  {name}: median {statistics.median(paged):.1f} ms, its data {statistics.median(data):.1f} ms "
              f"(hand-written {statistics.median(handed):.1f}); CPU of this process per request, medians: "
              f"page {page_cpu:.2f} ms, data {data_cpu:.2f} ms, hand-written {hand_cpu:.2f} ms")  # fmt: skip
        for label, values, target in ((name, paged, "< 100 ms, <= 1.5x"), (f"{name} data", data, "<= 1.5x")):
            report.add(f"{label}, p95", p95(values), "ms", p95(handed), target, higher_is_better=False)
            report.add(f"{label}, median", statistics.median(values), "ms", statistics.median(handed), "",
                       higher_is_better=False)  # fmt: skip
    report.print()
    print("\n(the page includes the HTTP round trip through the ASGI app, the session check, permission checks,"
          " hooks and Jinja2 rendering; its data is the page's reads alone, in process, permission checks and"
          " hooks included; the hand-written queries only fetch the rows)")  # fmt: skip
    if args.split:
        for name, paths, data in (("contact page", [f"/console/contacts/{c}" for c in contacts], "contact_page_data"),
                                  ("search", [f"/console/search?q={q}" for q in terms], "search_hits")):  # fmt: skip
            print(f"\nWhere the {name}'s time goes (medians, ms):\n")
            print("| Part | Wall | CPU |\n| --- | --- | --- |")
            for part, wall, cpu in split(client, paths, data):
                print(f"| {part.strip()} | {wall:.2f} | {cpu:.2f} |")
    client.__exit__(None, None, None)
    crm.dispose()
    hand.dispose()


if __name__ == "__main__":
    main()
