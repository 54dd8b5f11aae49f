"""Contact data at scale (issue 5): CSV import, segment evaluation, erase.

Run: python bench/contacts.py [--full]. Default sizes finish in a minute or
two; ``--full`` runs the issue's targets (1,000,000 imported rows; a segment
over 1,000,000 contacts and 5,000,000 touchpoints; erase of a contact with
10,000 touchpoints). Each figure is printed beside a baseline measured in
the same run:

- import: rows/s and peak memory (max RSS of a child process) against raw
  ``sqlite3`` ``executemany`` of the same rows into a one-index table;
- segment: the saved segment's count against the same count written by hand
  in SQL, on SQLite and PostgreSQL;
- erase: ``crm.contacts.erase`` against the bare ``UPDATE`` of the touchpoints.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT, Report, median_time, scratch_postgresql, scratch_sqlite

from crmcore import CRM

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CAMPAIGNS = ["spring", "summer", "autumn", "winter", "launch"]
KINDS = ["email_open", "email_click", "visit", "ad_click", "form"]
SEGMENT = {"all": [
    {"field": "country", "op": "in", "value": ["DE", "AT"]},
    {"touchpoint": {"kind": "email_click", "campaign": "spring", "within_days": 30, "min_count": 2}},
    {"not": {"tag": "vip"}},
]}  # fmt: skip
HAND_WRITTEN = """
SELECT count(*) FROM contact c
WHERE c.erased_at IS NULL AND c.merged_into_id IS NULL AND c.country IN ('DE', 'AT')
  AND c.id IN (SELECT t.contact_id FROM touchpoint t WHERE t.kind = 'email_click' AND t.campaign = 'spring'
               AND t.occurred_at >= :since GROUP BY t.contact_id HAVING count(*) >= 2)
  AND NOT EXISTS (SELECT 1 FROM contact_tag ct JOIN tag g ON g.id = ct.tag_id
                  WHERE ct.contact_id = c.id AND g.name = 'vip')
"""

# -- import -------------------------------------------------------------------------------------


def write_csv(path: Path, rows: int, phones: bool = False) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "last_name", "city", "country", "tags", *(["phone"] if phones else [])])
        for n in range(rows):
            extra = [f"+49 30 {1000000 + n}"] if phones else []
            writer.writerow([f"person{n}@example{n % 97}.com", f"First{n}", f"Last{n}", "Berlin", "DE",
                             "vip" if n % 50 == 0 else "", *extra])  # fmt: skip


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from crmcore import CRM
crm = CRM(database_url={url!r}, plugins=[], environment="test")
crm.db_upgrade()
start, cpu = time.perf_counter(), time.process_time()
result = crm.contacts.import_csv({path!r}, batch_size=5000)
elapsed = time.perf_counter() - start
print(json.dumps({{"rows": result.rows, "created": result.created, "seconds": elapsed,
                  "cpu_seconds": time.process_time() - cpu,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

RAW_CHILD = """
import csv, json, resource, sqlite3, time
connection = sqlite3.connect({db!r})
connection.execute("CREATE TABLE contact (id INTEGER PRIMARY KEY, email TEXT UNIQUE, first_name TEXT, "
                   "last_name TEXT, city TEXT, country TEXT, tags TEXT)")
start, cpu = time.perf_counter(), time.process_time()
rows = 0
with open({path!r}, newline="", encoding="utf-8") as handle:
    reader = csv.reader(handle)
    next(reader)
    batch = []
    for row in reader:
        batch.append(row[:6])
        if len(batch) == 5000:
            with connection:
                connection.executemany("INSERT INTO contact (email, first_name, last_name, city, country, tags) "
                                       "VALUES (?, ?, ?, ?, ?, ?)", batch)
            rows += len(batch)
            batch = []
    with connection:
        connection.executemany("INSERT INTO contact (email, first_name, last_name, city, country, tags) "
                               "VALUES (?, ?, ?, ?, ?, ?)", batch)
    rows += len(batch)
print(json.dumps({{"rows": rows, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(code: str) -> dict[str, float]:
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench_import(report: Report, rows: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="crmbench-import-"))
    path = folder / "people.csv"
    write_csv(path, rows)
    ours = child(CHILD.format(root=str(ROOT), url=f"sqlite:///{folder / 'crm.db'}", path=str(path)))
    again = child(CHILD.format(root=str(ROOT), url=f"sqlite:///{folder / 'crm.db'}", path=str(path)))
    raw = child(RAW_CHILD.format(db=str(folder / "raw.db"), path=str(path)))
    assert ours["created"] == rows and again["created"] == 0
    report.add(f"import of {rows:,} CSV rows, SQLite (rows/s)", rows / ours["seconds"], "/s",
               rows / raw["seconds"], ">= 20,000/s")  # fmt: skip
    report.add("the same import per CPU-second (load-independent; rows/s)", rows / ours["cpu_seconds"], "/s",
               rows / raw["cpu_seconds"])  # fmt: skip
    report.add(f"re-import of the same {rows:,} rows, nothing created (rows/s)", rows / again["seconds"], "/s",
               rows / raw["seconds"])  # fmt: skip
    report.add(f"import of {rows:,} rows, peak memory (MB, whole process)", ours["rss_mb"], "MB", raw["rss_mb"],
               "< 300 MB", higher_is_better=False)  # fmt: skip
    phones = max(rows // 10, 1000)
    write_csv(folder / "phones.csv", phones, phones=True)
    with_phones = child(CHILD.format(root=str(ROOT), url=f"sqlite:///{folder / 'p.db'}",
                                     path=str(folder / "phones.csv")))  # fmt: skip
    report.add(f"import of {phones:,} rows with a phone column (rows/s; phonenumbers per row)",
               phones / with_phones["seconds"], "/s")  # fmt: skip


# -- segment ------------------------------------------------------------------------------------


def fill(crm: CRM, contacts: int, touches_per_contact: int, seed: int = 1) -> None:
    """Bulk-load contacts, tags and touchpoints straight through the engine (the set-up is not measured)."""
    from sqlalchemy import insert

    from crmcore.models import Contact, ContactTag, Tag, Touchpoint

    rng = random.Random(seed)
    with crm.engine.begin() as connection:
        connection.execute(insert(Tag), [{"id": 1, "name": "vip"}])
        for start in range(0, contacts, 20_000):
            ids = range(start + 1, min(start + 20_000, contacts) + 1)
            connection.execute(insert(Contact), [{
                "id": i, "email": f"c{i}@example.com", "email_normalized": f"c{i}@example.com",
                "country": rng.choice(["DE", "AT", "FR", "GB", "US"]), "stage": "lead", "score": 0, "custom": {},
                "do_not_contact": False, "do_not_track": False, "created_at": NOW, "updated_at": NOW,
                "stage_changed_at": NOW, "last_activity_at": NOW,
            } for i in ids])  # fmt: skip
            connection.execute(insert(ContactTag), [{"contact_id": i, "tag_id": 1} for i in ids if i % 10 == 0])
            connection.execute(insert(Touchpoint), [{
                "contact_id": i, "kind": rng.choice(KINDS), "campaign": rng.choice(CAMPAIGNS),
                "occurred_at": NOW - timedelta(days=rng.randrange(90)), "quantity": 1, "details": {},
            } for i in ids for _ in range(touches_per_contact)])  # fmt: skip


def bench_segment(report: Report, contacts: int, backend: str, runs: int) -> None:
    from sqlalchemy import text

    from crmcore.clock import FrozenClock

    url = scratch_sqlite("segment.db") if backend == "sqlite" else scratch_postgresql("crmbench_segment")
    if url is None:
        return
    crm = CRM(database_url=url, plugins=[], environment="test", clock=FrozenClock(NOW))
    crm.db_upgrade()
    started = time.perf_counter()
    fill(crm, contacts, 5)
    if backend == "postgresql":
        with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    else:
        with crm.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    print(f"  (loaded {contacts:,} contacts and {5 * contacts:,} touchpoints in {time.perf_counter() - started:.0f} s)")
    crm.segments.create("spring-clickers", SEGMENT)
    count = crm.segments.count("spring-clickers")

    def by_hand() -> int:
        with crm.engine.connect() as connection:
            return int(connection.execute(text(HAND_WRITTEN), {"since": NOW - timedelta(days=30)}).scalar_one())

    assert by_hand() == count, (by_hand(), count)
    ours = median_time(lambda: crm.segments.count("spring-clickers"), runs)
    hand = median_time(by_hand, runs)
    report.add(f"segment count over {contacts:,} contacts / {5 * contacts:,} touchpoints, {backend} (ms)",
               ours * 1000, "ms", hand * 1000, "< 2 s at 1M", higher_is_better=False)  # fmt: skip
    crm.dispose()


# -- erase --------------------------------------------------------------------------------------


def bench_erase(report: Report, touches: int, runs: int) -> None:
    from sqlalchemy import insert, text

    from crmcore.models import Touchpoint

    url = scratch_sqlite("erase.db")
    crm = CRM(database_url=url, plugins=[], environment="test")
    crm.db_upgrade()
    ids = [crm.contacts.add(email=f"e{n}@example.com").id for n in range(2 * runs)]
    with crm.engine.begin() as connection:
        for contact_id in ids:
            connection.execute(insert(Touchpoint), [{
                "contact_id": contact_id, "kind": "visit", "occurred_at": NOW, "quantity": 1,
                "url": f"https://shop.example.com/?u={contact_id}", "details": {"ua": "x"},
            } for _ in range(touches)])  # fmt: skip
    ours_ids, raw_ids = iter(ids[:runs]), iter(ids[runs:])
    ours = median_time(lambda: crm.contacts.erase(next(ours_ids)), runs)

    def bare() -> None:
        with crm.engine.begin() as connection:
            connection.execute(text("UPDATE touchpoint SET referrer = NULL, url = NULL, click_id = NULL, notes = NULL, "
                                    "details = '{}' WHERE contact_id = :c"), {"c": next(raw_ids)})  # fmt: skip

    raw = median_time(bare, runs)
    report.add(f"erase of a contact with {touches:,} touchpoints, SQLite (ms)", ours * 1000, "ms", raw * 1000,
               "< 1 s", higher_is_better=False)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="The issue's sizes: 1M rows, 1M contacts / 5M touches.")
    parser.add_argument("--rows", type=int, help="Rows to import (default 50,000; 1,000,000 with --full).")
    parser.add_argument("--contacts", type=int, help="Contacts for the segment (default 50,000; 1,000,000 --full).")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="Comma-separated: import,segment,erase.")
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.full else 50_000)
    contacts = args.contacts or (1_000_000 if args.full else 50_000)
    only = set((args.only or "import,segment,erase").split(","))
    report = Report("Contacts benchmarks (medians; ratios against baselines measured in the same run)")
    if "import" in only:
        bench_import(report, rows)
    if "segment" in only:
        for backend in ("sqlite", "postgresql"):
            bench_segment(report, contacts, backend, args.runs)
    if "erase" in only:
        bench_erase(report, 10_000, args.runs)
    report.print()
    print(f"\n(python {sys.version.split()[0]}, {statistics.__name__} medians; the machine may be shared and loaded)")


if __name__ == "__main__":
    main()
