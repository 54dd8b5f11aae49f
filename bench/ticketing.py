"""Ticketing benchmarks (issue 6): email ingestion, SLA deadline computation, the SLA check at scale.

Run: python bench/ticketing.py [--quick]. SQLite only (a file in a temporary folder).

1. Ingest: N emails (half new conversations, half replies threading by
   In-Reply-To) through the Maildir path (``ingest_many``, batches of 200), with
   an SLA policy on a business calendar, so every ticket starts metrics and
   timers. Baseline in the same run: parsing the same messages with Python's
   ``email`` package and inserting one row each with raw sqlite3 (the floor of
   "parse and store"). Target: >= 500 messages/s.
2. Deadline: one resolution deadline per ticket (start, pause, resume) on a
   business calendar with German public holidays and closed days, as the
   engine computes it (timeline + interval arithmetic). Baseline: the same
   deadlines by stepping minute by minute (what interval arithmetic avoids),
   on fewer samples. Target: < 100 us.
3. The SLA check: 1,000,000 open tickets, each with a pending SLA timer in
   the outbox, of which D are due now (D = 10, 100, 1000). The check is the
   worker's claim of the due timers (indexed range scan on state and
   available_at); it must grow with D, not with the table. Baseline: the same
   claim by hand in raw sqlite3 (select, update, commit), and a full scan of the table. Target for
   D = 100: < 20 ms.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from _common import Report, scratch_sqlite

from crmcore import CRM
from crmcore.clock import FrozenClock

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def make_emails(count: int) -> list[bytes]:
    """*count* realistic messages: new conversations, and replies to them by In-Reply-To."""
    rng = random.Random(6)
    subjects = ["Printer shows a paper jam", "Cannot log in", "Wrong VAT rate on invoices", "Refund for order",
                "Delivery arrived damaged", "How do I export my data?"]  # fmt: skip
    messages: list[bytes] = []
    originals: list[str] = []
    for n in range(count):
        reply = originals and n % 2 == 1
        sender = f"customer{rng.randrange(max(count // 10, 1))}@example.com"
        message_id = f"<bench-{n}@example.com>"
        headers = [f"From: Customer {n} <{sender}>", "To: support@example.com",
                   f"Date: {format_datetime(START)}", f"Message-ID: {message_id}", "MIME-Version: 1.0"]  # fmt: skip
        if reply:
            parent = rng.choice(originals)
            headers += [f"Subject: Re: {rng.choice(subjects)}", f"In-Reply-To: {parent}", f"References: {parent}"]
            body = "Any news on this?\n\nOn Monday Support wrote:\n> We are looking into it.\n"
        else:
            originals.append(message_id)
            headers.append(f"Subject: {rng.choice(subjects)} #{n}")
            body = "Hello,\n\nsince this morning it does not work. Can you help?\n\nThanks\n"
        headers += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        messages.append(("\r\n".join(headers) + "\r\n\r\n" + body).encode())
    return messages


def ticketing_crm(url: str, clock: FrozenClock) -> CRM:
    from crmcore_ticketing import ticketing

    crm = CRM(database_url=url, plugins=["ticketing"], clock=clock, environment="test",
              plugin_settings={"ticketing": {"acknowledge": False}})  # fmt: skip
    crm.db_upgrade()
    support = ticketing(crm)
    support.sla.add_calendar("Berlin office", timezone="Europe/Berlin", hours="mon-fri 09:00-12:00,13:00-17:00",
                             holidays="DE", region="BE", closed_days=["2026-12-24"])  # fmt: skip
    support.sla.add_policy("Standard", calendar="Berlin office",
                           targets={"*": {"first_reply": "4h", "next_reply": "8h", "resolution": "24h"}},
                           warnings=["80%"])  # fmt: skip
    return crm


def bench_ingest(report: Report, count: int, runs: int) -> None:
    from crmcore_ticketing import ticketing

    emails = make_emails(count)
    rates, baselines = [], []
    for _ in range(runs):
        crm = ticketing_crm(scratch_sqlite("ingest.db"), FrozenClock(START))
        mail = ticketing(crm).mail
        started = time.perf_counter()
        actions: dict[str, int] = {}
        for offset in range(0, count, 200):
            batch = [(f"m{offset + i}", raw) for i, raw in enumerate(emails[offset : offset + 200])]
            for result in mail.ingest_many(batch):
                actions[result.action] = actions.get(result.action, 0) + 1
        rates.append(count / (time.perf_counter() - started))
        assert actions.get("rejected", 0) == 0, actions
        crm.dispose()
        baselines.append(_ingest_baseline(emails))
    print(f"  ingest outcome of the last run: {actions}")
    report.add(f"ingest {count:,} emails (SQLite, Maildir batches)", statistics.median(rates), "messages/s",
               statistics.median(baselines), ">= 500 messages/s")  # fmt: skip


def _ingest_baseline(emails: list[bytes]) -> float:
    import email
    import email.policy

    path = scratch_sqlite("baseline.db").removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, sender TEXT, "
                       "subject TEXT, body TEXT)")  # fmt: skip
    started = time.perf_counter()
    for offset in range(0, len(emails), 200):
        with connection:
            for raw in emails[offset : offset + 200]:
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                body = parsed.get_body(("plain",))
                connection.execute("INSERT INTO message (message_id, sender, subject, body) VALUES (?, ?, ?, ?)",
                                   (str(parsed["Message-ID"]), str(parsed["From"]), str(parsed["Subject"]),
                                    body.get_content() if body else ""))  # fmt: skip
    rate = len(emails) / (time.perf_counter() - started)
    connection.close()
    return rate


def bench_deadline(report: Report, samples: int) -> None:
    from crmcore_ticketing.calendar import BusinessCalendar
    from crmcore_ticketing.engine import Timeline

    calendar = BusinessCalendar("Europe/Berlin", "mon-fri 09:00-12:00,13:00-17:00", holiday_country="DE",
                                holiday_region="BE", closed_days=["2026-12-24", "2026-12-31"])  # fmt: skip
    rng = random.Random(1)
    cases = []
    for _ in range(samples):
        start = START + timedelta(minutes=rng.randrange(365 * 24 * 60))
        pause = start + timedelta(hours=rng.randrange(1, 30))
        resume = pause + timedelta(hours=rng.randrange(1, 60))
        target = timedelta(hours=rng.choice([4, 8, 24, 40]))
        cases.append((Timeline(start=start, active=[(start, pause), (resume, None)], paused=[(pause, resume)]), target))
    for line, target in cases[:200]:  # warm the per-day cache as a running worker would have it
        line.instant_of(calendar, target)

    def ours() -> None:
        for line, target in cases:
            line.instant_of(calendar, target)

    per_ticket = statistics.median(_timed(ours) for _ in range(5)) / samples * 1e6
    few = cases[: max(samples // 50, 20)]

    def stepping() -> None:
        for line, target in few:
            _step_minutes(calendar, line, target)

    for line, target in few[:20]:  # both ways agree (every time here is a whole minute)
        assert _step_minutes(calendar, line, target) == line.instant_of(calendar, target)
    baseline = statistics.median(_timed(stepping) for _ in range(3)) / len(few) * 1e6
    report.add("SLA deadline per ticket (business calendar, holidays, one pause)", per_ticket, "us", baseline,
               "< 100 us", higher_is_better=False)  # fmt: skip


def _timed(func: object) -> float:
    started = time.perf_counter()
    func()  # type: ignore[operator]
    return time.perf_counter() - started


def _step_minutes(calendar: object, line: object, target: timedelta) -> datetime:
    """The naive way: walk minute by minute, counting open, unpaused minutes."""
    cal = calendar  # BusinessCalendar
    counted = 0
    minute = line.start.replace(second=0, microsecond=0)  # type: ignore[attr-defined]
    paused = line.paused  # type: ignore[attr-defined]
    needed = int(target.total_seconds() // 60)
    while counted < needed:
        local = minute.astimezone(cal.zone)  # type: ignore[attr-defined]
        open_now = any(a <= minute < b for a, b in cal.intervals(local.date()))  # type: ignore[attr-defined]
        if open_now and not any(p <= minute < (q or minute + timedelta(days=1)) for p, q in paused):
            counted += 1
        minute += timedelta(minutes=1)
    return minute


def bench_check(report: Report, total: int, runs: int) -> None:
    from crmcore.jobs import outbox

    url = scratch_sqlite("check.db")
    clock = FrozenClock(START)
    crm = CRM(database_url=url, plugins=["ticketing"], clock=clock, environment="test")
    crm.db_upgrade()
    path = url.removeprefix("sqlite:///")
    connection = sqlite3.connect(path)
    now = START.replace(tzinfo=None)
    later = (now + timedelta(days=30)).isoformat(sep=" ")
    started = time.perf_counter()
    with connection:
        connection.execute(
            "WITH RECURSIVE seq(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM seq WHERE value < ?) "
            "INSERT INTO ticketing_ticket (id, number, subject, requester_id, category, priority, status, tags, "
            "channel, status_log, opened_by_agent, created_at, updated_at, next_due_at) "
            "SELECT value, 'TK-' || value, 'Open ticket', 1, 'question', 'normal', 'open', '[]', 'email', '[]', 0, "
            "?, ?, ? FROM seq",
            (total, now.isoformat(sep=" "), now.isoformat(sep=" "), later),
        )
        connection.execute(
            "WITH RECURSIVE seq(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM seq WHERE value < ?) "
            "INSERT INTO job (handler, payload, idempotency_key, state, due_at, available_at, attempts, max_attempts, "
            "created_at) SELECT 'ticketing.sla', '{}', 'ticketing.sla:' || value || ':1', 'pending', ?, ?, 0, 8, ? "
            "FROM seq", (total, later, later, now.isoformat(sep=" ")))  # fmt: skip
        connection.execute("ANALYZE")
    print(f"  filled {total:,} open tickets with pending SLA timers in {time.perf_counter() - started:.1f}s")
    due_at = (now - timedelta(minutes=1)).isoformat(sep=" ")
    for due in (10, 100, 1000):
        with connection:
            connection.execute("UPDATE job SET state='pending', available_at=?, due_at=?, locked_by=NULL "
                               "WHERE id <= ?", (due_at, due_at, due))  # fmt: skip
        times, hand, scans = [], [], []
        for _ in range(runs):
            begin = time.perf_counter()
            claimed = outbox.claim(crm, "bench", due + 50, timedelta(minutes=5))
            times.append(time.perf_counter() - begin)
            assert len(claimed) == due, len(claimed)
            with connection:
                connection.execute("UPDATE job SET state='pending', available_at=?, locked_by=NULL, attempts=0 "
                                   "WHERE id <= ?", (due_at, due))  # fmt: skip
            begin = time.perf_counter()  # the same claim by hand: select the due ids, mark them, commit
            connection.execute("BEGIN IMMEDIATE")
            ids = [r[0] for r in connection.execute(
                "SELECT id FROM job WHERE state IN ('pending', 'running', 'queued') AND available_at <= ? "
                "ORDER BY available_at LIMIT ?", (now.isoformat(sep=" "), due + 50))]  # fmt: skip
            connection.execute(f"UPDATE job SET state='running', locked_by='hand', attempts=attempts+1 "
                               f"WHERE id IN ({','.join('?' * len(ids))})", ids)  # fmt: skip
            connection.execute("COMMIT")
            hand.append(time.perf_counter() - begin)
            assert len(ids) == due
            with connection:
                connection.execute("UPDATE job SET state='pending', locked_by=NULL, attempts=0 WHERE id <= ?", (due,))
            begin = time.perf_counter()
            connection.execute("SELECT count(*) FROM job NOT INDEXED WHERE state = 'pending' AND available_at <= ?",
                               (now.isoformat(sep=" "),)).fetchone()  # fmt: skip
            scans.append(time.perf_counter() - begin)
        print(
            f"  {due:>5} due: claim {statistics.median(times) * 1000:.2f} ms; hand-written claim "
            f"{statistics.median(hand) * 1000:.3f} ms; full scan {statistics.median(scans) * 1000:.0f} ms"
        )
        report.add(f"SLA check: claim {due} due among {total:,} open tickets", statistics.median(times) * 1000, "ms",
                   statistics.median(hand) * 1000, "< 20 ms" if due == 100 else "", higher_is_better=False)  # fmt: skip
        with connection:
            connection.execute("UPDATE job SET state='pending', available_at=?, due_at=? WHERE id <= ?",
                               (later, later, due))  # fmt: skip
    begin = time.perf_counter()
    from crmcore_ticketing import ticketing

    breaching = ticketing(crm).tickets.list(breaching=True, within=timedelta(days=31), limit=100)
    print(f"  crm ticket list --breaching (first 100 of {total:,}): {(time.perf_counter() - begin) * 1000:.1f} ms,"
          f" {len(breaching)} rows")  # fmt: skip
    connection.close()
    crm.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    options = parser.parse_args()
    report = Report("Ticketing benchmarks (SQLite)")
    print("ingest")
    bench_ingest(report, 1000 if options.quick else 10_000, 1 if options.quick else 3)
    print("deadline computation")
    bench_deadline(report, 2000 if options.quick else 20_000)
    print("SLA check")
    bench_check(report, 20_000 if options.quick else 1_000_000, 3 if options.quick else 5)
    report.print()


if __name__ == "__main__":
    main()
