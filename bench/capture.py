"""Capture benchmarks (issue 4): web form capture and tracked-link redirects over real HTTP.

Run: python bench/capture.py [--full] [--backends sqlite,postgresql]

For each database, two servers run one after the other, each in its own
process (uvicorn on 127.0.0.1, one worker, same settings):

- crmcore: ``crm.asgi_app()`` with a form ``bench`` and a short link ``bench``;
- bare: a Starlette app whose ``POST /forms/bench`` reads the same urlencoded
  body and inserts the same two rows (contact, form touchpoint) with plain
  SQLAlchemy Core, and whose ``GET /r/bench`` reads the link and inserts one
  click touchpoint: the floor of "parse, store, answer" on the same stack.

The two servers alternate (bare, crmcore, bare, crmcore: ``--rounds``) and
the medians are reported, so a change in the machine's load weighs on both.
uvicorn uses uvloop and httptools when installed (extra ``web``), as in
production; the title says which stack ran.

The load generator is this process: asyncio with raw keep-alive HTTP/1.1
connections (a client far cheaper than the servers), C connections in flight,
N requests per scenario or a time bound, whichever comes first. Every
submission carries a new email. Reported: requests/s, p50 and p99 latency, and
whether every 303 has its row (no lost submission).

Targets (issue 4): >= 0.5 of the bare endpoint's throughput; >= 1,000
captures/s on PostgreSQL with p99 < 50 ms and no lost submission; redirects
>= 2,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _common import Report, scratch_postgresql, scratch_sqlite

HERE = Path(__file__).resolve().parent


# -- the servers (run in a child process) ------------------------------------


def bare_app(url: str):  # type: ignore[no-untyped-def]
    """The baseline: the same rows written with plain SQLAlchemy Core, no crmcore."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, insert, select
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from crmcore.db import create_engine

    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine, only=["contact", "touchpoint", "tracked_link"])
    contact, touchpoint, link = meta.tables["contact"], meta.tables["touchpoint"], meta.tables["tracked_link"]

    def store(form: dict[str, str]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None) if engine.dialect.name != "postgresql" else datetime.now(UTC)
        with engine.begin() as connection:
            email = form["email"].strip()
            contact_id = connection.execute(
                insert(contact)
                .values(
                    email=email,
                    email_normalized=email.lower(),
                    first_name=form.get("first_name"),
                    stage="lead",
                    stage_changed_at=now,
                    custom={},
                    score=15,
                    do_not_contact=False,
                    do_not_track=False,
                    created_at=now,
                    updated_at=now,
                    last_activity_at=now,
                    source=form.get("utm_source"),
                )
                .returning(contact.c.id)
            ).scalar_one()
            connection.execute(insert(touchpoint).values(
                contact_id=contact_id, kind="form", occurred_at=now, utm_source=form.get("utm_source"),
                campaign=form.get("utm_campaign"), quantity=1, details={"form": "bench"},
            ))  # fmt: skip

    def click(code: str) -> str | None:
        now = datetime.now(UTC).replace(tzinfo=None) if engine.dialect.name != "postgresql" else datetime.now(UTC)
        with engine.begin() as connection:
            row = connection.execute(select(link.c.id, link.c.url).where(link.c.code == code)).first()
            if row is None:
                return None
            connection.execute(insert(touchpoint).values(
                kind="link_click", occurred_at=now, quantity=1, link_id=row.id, url=row.url, details={},
            ))  # fmt: skip
            return str(row.url)

    async def form_post(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        await run_in_threadpool(store, form)
        return RedirectResponse("/thanks", status_code=303)

    async def redirect(request: Request) -> Response:
        url = await run_in_threadpool(click, request.path_params["code"])
        return RedirectResponse(url, status_code=302) if url else PlainTextResponse("no", status_code=404)

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/forms/bench", form_post, methods=["POST"]), Route("/r/{code}", redirect),
                             Route("/healthz", health)])  # fmt: skip


def serve(kind: str, url: str, port: int) -> None:
    """Child process: serve the crmcore app or the bare app on *port*."""
    import uvicorn

    if kind == "crm":
        from crmcore import CRM

        app = CRM(database_url=url, plugins=[], environment="test", form_rate_per_minute=10**9,
                  form_dedupe_seconds=0).asgi_app()  # fmt: skip
    else:
        app = bare_app(url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


# -- the load generator ------------------------------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def load(port: int, make_request, count: int, concurrency: int, seconds: float):  # type: ignore[no-untyped-def]
    """Send up to *count* requests (or for *seconds*) over *concurrency* connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < count and time.perf_counter() < deadline:
                index = next_index
                next_index += 1
                start = time.perf_counter()
                status = await _request(reader, writer, make_request(index))
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000, "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "statuses": statuses,
    }  # fmt: skip


def form_request(run: str):  # type: ignore[no-untyped-def]
    def make(index: int) -> bytes:
        body = urlencode({"email": f"u{index}-{run}@example.com", "first_name": "Ada",
                          "utm_source": "bench", "utm_campaign": "spring"}).encode()  # fmt: skip
        return (b"POST /forms/bench HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/x-www-form-urlencoded\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip

    return make


def redirect_request(index: int) -> bytes:
    return b"GET /r/bench?utm_source=bench HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(kind: str, url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", kind, url, str(port)],
                               env=env)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {kind} server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def prepare(url: str):  # type: ignore[no-untyped-def]
    from crmcore import CRM
    from crmcore.migrate import upgrade

    crm = CRM(database_url=url, plugins=[], environment="test")
    upgrade(crm)
    crm.forms.create("bench", title="Bench", fields=[{"name": "email", "type": "email", "required": True},
                                                     {"name": "first_name"}])  # fmt: skip
    crm.links.create("https://shop.example.com/landing", code="bench", campaign="spring")
    return crm


def form_rows(crm, run: str) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from crmcore.models import Contact, Touchpoint

    with crm.transaction(readonly=True) as ctx:
        return int(ctx.scalar(
            select(func.count(Touchpoint.id)).join(Contact, Contact.id == Touchpoint.contact_id)
            .where(Touchpoint.kind == "form", Contact.email_normalized.like(f"%-{run}@example.com"))
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="20,000 requests per scenario (default 3,000).")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="Time bound per scenario.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds of each server (medians).")
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    count = 20_000 if args.full else 3_000
    seconds = args.seconds * (5 if args.full else 1)
    stack = "uvloop + httptools" if find_spec("uvloop") and find_spec("httptools") else "asyncio + h11"
    report = Report(f"Capture over HTTP: {count:,} requests max, {args.concurrency} connections, "
                    f"{seconds:.0f} s bound, 1 uvicorn worker ({stack}), {args.rounds} alternating rounds")  # fmt: skip
    for backend in args.backends.split(","):
        url = scratch_sqlite("capture.db") if backend == "sqlite" else scratch_postgresql("crmbench_capture")
        if url is None:
            continue
        print(f"\n{backend}:")
        crm = prepare(url)
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        # bare, crm, bare, crm, ...: a change in the machine's load weighs on both alike
        for kind in ("bare", "crm") * args.rounds:
            process, port = start_server(kind, url)
            try:
                for scenario, make in (("form", form_request(run := uuid.uuid4().hex[:8])),
                                       ("redirect", redirect_request)):  # fmt: skip
                    asyncio.run(load(port, make, 200, args.concurrency, 10))  # warm-up
                    if scenario == "form":
                        run = uuid.uuid4().hex[:8]
                        make = form_request(run)
                    result = asyncio.run(load(port, make, count, args.concurrency, seconds))
                    if scenario == "form" and kind == "crm":
                        result["rows"] = form_rows(crm, run)
                    results.setdefault((kind, scenario), []).append(result)
                    print(f"  {kind:5} {scenario:8} {result['rps']:8.0f} req/s  p50 {result['p50']:6.1f} ms  "
                          f"p99 {result['p99']:6.1f} ms  {result['statuses']}"
                          + (f"  rows {result['rows']}" if "rows" in result else ""))  # fmt: skip
            finally:
                stop(process)
        for scenario, target in (("form", ">= 0.5 of bare; PG >= 1,000/s"),
                                 ("redirect", ">= 0.5 of bare; >= 2,000/s")):  # fmt: skip
            ours, bare = results[("crm", scenario)], results[("bare", scenario)]

            def median(runs: list[dict[str, Any]], key: str) -> float:
                return statistics.median(r[key] for r in runs)

            report.add(f"{backend} {scenario} throughput", median(ours, "rps"), "req/s", median(bare, "rps"), target)
            report.add(f"{backend} {scenario} p50", median(ours, "p50"), "ms", median(bare, "p50"), "",
                       higher_is_better=False)  # fmt: skip
            p99_target = "< 50 ms (PG)" if scenario == "form" else ""
            report.add(f"{backend} {scenario} p99", median(ours, "p99"), "ms", median(bare, "p99"), p99_target,
                       higher_is_better=False)  # fmt: skip
        forms = results[("crm", "form")]
        accepted = sum(r["statuses"].get(303, 0) for r in forms)
        rows = sum(r["rows"] for r in forms)
        print(f"  {backend}: {accepted} submissions answered 303, {rows} form rows: "
              + ("no lost submission" if accepted == rows else "MISMATCH"))  # fmt: skip
        crm.dispose()
    report.print()


if __name__ == "__main__":
    main()
