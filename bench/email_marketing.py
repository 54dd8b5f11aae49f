"""Email marketing benchmarks (issue 7): render-and-queue, and delivery to a local SMTP sink.

Run: python bench/email_marketing.py [--full]. Default sizes finish in a minute or two;
``--full`` uses the issue's sizes (100,000 recipients, 10,000 deliveries).

1. Render and queue: a campaign to N contacts (SQLite file). Each contact is
   rendered (subject, a sandboxed autoescaped Jinja2 page in the shared layout,
   three links rewritten through signed redirect URLs, a signed open pixel and
   unsubscribe link) and stored as a queued recipient, chunk by chunk, with its
   delivery batches in the outbox: exactly what the fill jobs do (called
   directly, without the worker's claim). Reported: recipients/s and the
   process's peak memory (RSS). Baselines in the same run: the bare sandboxed
   render of the same template per recipient (no tokens, no database), and raw
   sqlite3 inserting the same rows. Also per CPU second of the process, beside the
   bare render's (steady on a loaded machine). Targets: >= 5,000 recipients/s,
   peak < 250 MB.
2. Delivery: M queued messages delivered by 1 and by 4 worker processes (the
   outbox's batches, one SMTP connection per batch, one commit per group of
   ``commit_every`` messages) to an SMTP sink in its own process (aiosmtpd,
   answering 250 and discarding), on PostgreSQL when reachable (several workers
   need row locks), else SQLite. Reported: messages/s between the first and the
   last commit of sent marks (the messages of the first commit left before the
   span starts, so they are not counted). Baseline: smtplib sending the same
   number of prebuilt messages (bytes) over one connection to the same sink.
   Also the workers' own CPU time per message. Target: >= 500 messages/s.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import Report, scratch_postgresql, scratch_sqlite  # noqa: E402

from crmcore import CRM, hookimpl  # noqa: E402

HTML = """<h1>Hello {{ contact.first_name or "there" }}</h1>
<p>Our spring collection is in{% if contact.city %}, and the {{ contact.city }} shop has it too{% endif %}.</p>
<p><a href="https://shop.example.com/spring?utm_source=email">See the collection</a></p>
<p><a href="https://shop.example.com/sale">The sale</a> &middot; <a href="https://shop.example.com/stores">Stores</a></p>
<p>{{ contact.custom.tier or "Member" }} benefits apply.</p>
"""
SUBJECT = "{{ contact.first_name or 'Hello' }}, spring is here"


class Everyone:
    """The segment ``everyone`` (what the contacts helper's saved segments answer in real use)."""

    @hookimpl
    def crm_segment_query(self, name: str, ctx: Any) -> Any:
        from sqlalchemy import select

        from crmcore.models import Contact

        return select(Contact.id) if name == "everyone" else None


def make_crm(url: str, smtp_port: int = 25) -> CRM:
    """The CRM of the benchmark (also built by the worker processes)."""
    return CRM(database_url=url, plugins=["email_marketing", Everyone()], environment="test", mail_transport="smtp",
               smtp_host="127.0.0.1", smtp_port=smtp_port, base_url="https://crm.example.com",
               mail_from="Shop <news@example.com>",
               plugin_settings={"email_marketing": {"consent_regime": "opt_out", "fill_chunk": 1000,
                                                    "batch_size": 200}})  # fmt: skip


def add_contacts(crm: CRM, count: int) -> None:
    """*count* contacts, inserted in chunks (not what is measured)."""
    from sqlalchemy import insert

    from crmcore.models import Contact

    now = datetime.now(UTC)
    cities = ["Berlin", None, "Lyon", "Austin", None]
    for start in range(0, count, 5000):
        rows = [{"email": f"person{n}@example.com", "email_normalized": f"person{n}@example.com",
                 "first_name": f"Person{n}" if n % 7 else None, "city": cities[n % 5], "stage": "lead",
                 "stage_changed_at": now, "created_at": now, "updated_at": now, "custom": {}, "score": 0,
                 "do_not_contact": False, "do_not_track": False}
                for n in range(start, min(count, start + 5000))]  # fmt: skip
        with crm.transaction() as ctx:
            ctx.session.execute(insert(Contact), rows)


def prepare_campaign(crm: CRM, name: str) -> int:
    from crmcore_email_marketing import email_marketing

    from crmcore.registry import CustomFieldSpec

    em = email_marketing(crm)
    if not em.templates.list():
        crm.custom_fields.define(CustomFieldSpec(name="tier", label="Tier"))
        em.templates.create("spring", subject=SUBJECT, html=HTML)
    campaign = em.campaigns.create(name, template="spring", segment="everyone")
    em.campaigns.send(name)
    return campaign.id


def fill_all(crm: CRM, campaign_id: int) -> None:
    """Run the fill chunks one after the other (what the fill jobs do)."""
    from crmcore_email_marketing.models import Campaign
    from crmcore_email_marketing.sending import fill_chunk

    while True:
        with crm.transaction() as ctx:
            campaign = ctx.session.get(Campaign, campaign_id)
            assert campaign is not None
            if campaign.fill_done:
                return
            fill_chunk(ctx, campaign)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_render_and_queue(report: Report, count: int) -> None:
    print(f"\n1. Render and queue {count:,} recipients (SQLite file)")
    url = scratch_sqlite("render.db")
    crm = make_crm(url)
    crm.db_upgrade()
    add_contacts(crm, count)
    campaign_id = prepare_campaign(crm, "Spring")
    before = peak_rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    fill_all(crm, campaign_id)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    peak = peak_rss_mb()
    rate = count / seconds

    # Baseline 1: the bare sandboxed render of the same page, per recipient.
    from crmcore_email_marketing.rendering import CompiledTemplate

    compiled = CompiledTemplate(crm, key="bench", subject=SUBJECT, html=HTML, text=None, layout="email/layout.html")
    contexts = [{"contact": {"first_name": f"Person{n}", "city": "Berlin", "language": None, "custom": {"tier": None}},
                 "subject": "", "unsubscribe_url": "#", "open_pixel_url": "", "sender_address": ""}
                for n in range(min(count, 20_000))]  # fmt: skip
    started, cpu_started = time.perf_counter(), time.process_time()
    pages = [compiled.render_html(context) for context in contexts]
    render_rate = len(contexts) / (time.perf_counter() - started)
    render_cpu_rate = len(contexts) / (time.process_time() - cpu_started)

    # Baseline 2: raw sqlite3 inserting rows of the same size, in chunks of 1000, one commit each.
    path = url.removeprefix("sqlite:///") + ".raw"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, campaign_id INT, contact_id INT, email TEXT, status TEXT,"
                " subject TEXT, html TEXT, UNIQUE (campaign_id, contact_id))")  # fmt: skip
    page = pages[0] + "x" * 400  # about the size of a page with its signed URLs
    started = time.perf_counter()
    for chunk in range(0, count, 1000):
        raw.executemany("INSERT INTO r (campaign_id, contact_id, email, status, subject, html) VALUES (?,?,?,?,?,?)",
                        [(1, n, f"person{n}@example.com", "queued", "Hello", page)
                         for n in range(chunk, min(count, chunk + 1000))])  # fmt: skip
        raw.commit()
    insert_rate = count / (time.perf_counter() - started)
    raw.close()
    crm.dispose()
    report.add("render and queue", rate, "recipients/s", target=">= 5,000/s")
    report.add("  baseline: bare sandboxed render", render_rate, "recipients/s")
    report.add("  baseline: raw sqlite3 insert of the rows", insert_rate, "rows/s")
    report.add("  ratio to the render alone", rate / render_rate, "x")
    # CPU time (SQLite runs in this process too) hardly depends on the machine's load: the steadier ratio.
    report.add("render and queue, per CPU second", count / cpu_seconds, "recipients/s", baseline=render_cpu_rate)
    report.add("peak memory (process RSS)", peak, "MB", target="< 250 MB", higher_is_better=False)
    report.add("  memory growth during render and queue", peak - before, "MB", higher_is_better=False)


SINK = """
import asyncio, signal, sys
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[str]:
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    assert sink.stdout.readline().strip() == "ready"
    return sink


def bench_delivery(report: Report, count: int) -> None:
    import smtplib

    from crmcore_email_marketing.models import Recipient
    from sqlalchemy import func, select

    from crmcore.mail import MailMessage, build_mime

    port = free_port()
    sink = start_sink(port)
    try:
        for workers in (1, 4):
            url = scratch_postgresql(f"crmbench_email_{workers}") or scratch_sqlite(f"deliver{workers}.db")
            backend = url.split(":", 1)[0]
            print(f"\n2. Deliver {count:,} messages with {workers} worker(s) ({backend})")
            crm = make_crm(url, port)
            crm.db_upgrade()
            add_contacts(crm, count)
            campaign_id = prepare_campaign(crm, f"Deliver {workers}")
            fill_all(crm, campaign_id)
            env = {**os.environ, "BENCH_URL": url, "BENCH_PORT": str(port)}
            started = time.perf_counter()
            processes = [subprocess.Popen([sys.executable, __file__, "worker"], env=env, stdout=subprocess.PIPE,
                                          text=True) for _ in range(workers)]  # fmt: skip
            worker_cpu = sum(float(process.communicate()[0].split()[-1]) for process in processes)
            wall = time.perf_counter() - started
            with crm.transaction(readonly=True) as ctx:
                sent_rows = (Recipient.campaign_id == campaign_id, Recipient.status == "sent")
                sent, first, last = ctx.session.execute(
                    select(func.count(), func.min(Recipient.sent_at), func.max(Recipient.sent_at)).where(*sent_rows)
                ).one()
                before_span = ctx.scalar(select(func.count()).where(*sent_rows, Recipient.sent_at == first))
            crm.dispose()
            span = (last - first).total_seconds()
            rate = (sent - before_span) / span if span > 0 else sent / wall
            print(f"  {sent:,} sent; {wall:.1f} s including process start-up")
            report.add(f"delivery, {workers} worker(s), {backend}", rate, "messages/s", target=">= 500/s")
            # The workers' own CPU while delivering (not the database's nor the sink's): hardly load-dependent.
            report.add("  worker CPU per message", worker_cpu / sent * 1e6, "µs", higher_is_better=False)

        # Baseline: smtplib over one connection, prebuilt messages.
        from crmcore.settings import Settings

        settings = Settings(mail_from="Shop <news@example.com>")
        messages = [build_mime(MailMessage(to=f"person{n}@example.com", subject="Hello", html="<p>Hi</p>" * 40),
                               settings) for n in range(count)]  # fmt: skip
        client = smtplib.SMTP("127.0.0.1", port)
        started = time.perf_counter()
        for message in messages:
            client.sendmail(message.sender, [message.recipient], message.data)
        baseline = count / (time.perf_counter() - started)
        client.quit()
        report.add("  baseline: smtplib, one connection, prebuilt", baseline, "messages/s")
    finally:
        sink.terminate()
        sink.wait()


def worker() -> None:
    """A delivery worker process: claims one job at a time until nothing is due."""
    crm = make_crm(os.environ["BENCH_URL"], int(os.environ["BENCH_PORT"]))
    worker = crm.jobs.worker(batch_size=1, poll_interval=0.05)
    cpu_started = time.process_time()
    worker.run(once=True)
    print(time.process_time() - cpu_started)  # the CPU seconds of the run, for the report
    crm.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (100,000 and 10,000)")
    parser.add_argument("--recipients", type=int, help="recipients to render and queue (0: skip)")
    parser.add_argument("--deliveries", type=int, help="messages to deliver (0: skip)")
    args = parser.parse_args()
    recipients, deliveries = (100_000, 10_000) if args.full else (20_000, 1_000)
    recipients = recipients if args.recipients is None else args.recipients
    deliveries = deliveries if args.deliveries is None else args.deliveries
    report = Report(f"Email marketing benchmarks ({recipients:,} recipients rendered, {deliveries:,} delivered)")
    if recipients:
        bench_render_and_queue(report, recipients)
    if deliveries:
        bench_delivery(report, deliveries)
    report.print()


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker()
    else:
        main()
