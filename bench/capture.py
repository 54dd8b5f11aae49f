"""Capture benchmarks (issue 4): web form capture and tracked-link redirects over real HTTP.

Run: python bench/capture.py [--full] [--backends sqlite,postgresql] [--workers N]

For each database, two servers run one after the other, each in its own
process tree (uvicorn on 127.0.0.1, the same settings for both):

- crmcore: ``crm.asgi_app()`` with a form ``bench`` and a short link ``bench``;
- bare: a Starlette app whose ``POST /forms/bench`` reads the same urlencoded
  body and inserts the same two rows (contact, form touchpoint) with plain
  SQLAlchemy Core, and whose ``GET /r/bench`` reads the link and inserts one
  click touchpoint: the floor of "parse, store, answer" on the same stack.

Serving is production-like: ``--workers`` uvicorn processes (default one per
core) on PostgreSQL, one on SQLite (one writer at a time; ``--sqlite-workers``),
uvloop and httptools when installed (extra ``web``). The two servers alternate
(bare, crmcore, bare, crmcore, ...: ``--rounds``) and the medians are reported,
so a change in the machine's load weighs on both.

The load generator is wrk (C; ``make system-deps`` installs Debian's package)
driven by ``capture.lua``: every submission carries a new email, each run is
bounded in count and time, and the statuses are counted. Without wrk the bench
falls back to a Python asyncio generator in this process, and says so: on a
small machine it takes a core from the servers. Reported: requests/s, p50 and
p99 latency, the server's CPU time per request (all its processes, from
/proc), the generator's CPU share, and whether every 303 has its row (no lost
submission: rows are counted against the 303s after the server settles).

With ``--other-checkout PATH`` a third server runs in every round: crmcore as
another checkout at PATH has it (its ``crmcore`` package first on the path; the
same bench, database and settings), so a change is measured against, say,
main in the same run: bare, crmcore, other, bare, crmcore, other, ...

Targets (issue 4): >= 0.5 of the bare endpoint's throughput; >= 1,000
captures/s on PostgreSQL with p99 < 50 ms and no lost submission; redirects
>= 2,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
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


def bench_app():  # type: ignore[no-untyped-def]
    """uvicorn's app factory in each worker process: the server named by the environment."""
    kind, url = os.environ["CRMCORE_BENCH_KIND"], os.environ["CRMCORE_BENCH_URL"]
    if kind in ("crm", "other"):
        if kind == "other":  # that checkout's crmcore, ahead of this one (which _common.py put first)
            checkout = os.environ["CRMCORE_BENCH_CHECKOUT"]
            assert "crmcore" not in sys.modules
            sys.path.insert(0, checkout)
        import crmcore
        from crmcore import CRM

        if kind == "other" and not crmcore.__file__.startswith(checkout):
            raise RuntimeError(f"crmcore came from {crmcore.__file__}, not from {checkout}")

        return CRM(database_url=url, plugins=[], environment="test", form_rate_per_minute=10**9,
                   form_dedupe_seconds=0).asgi_app()  # fmt: skip
    return bare_app(url)


def serve(kind: str, url: str, port: int, workers: int) -> None:
    """Child process: serve the crmcore app or the bare app on *port* with *workers* processes."""
    import uvicorn

    os.environ.update(CRMCORE_BENCH_KIND=kind, CRMCORE_BENCH_URL=url)
    sys.path.insert(0, str(HERE))
    uvicorn.run("capture:bench_app", factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level="warning", access_log=False, lifespan="off")  # fmt: skip


# -- the load generators ----------------------------------------------------


def wrk_load(port: int, scenario: str, run: str, count: int, connections: int, seconds: float,
             threads: int) -> dict[str, Any]:  # fmt: skip
    """Run wrk (C, Lua script ``capture.lua``): up to *count* requests or *seconds*, whichever first."""
    per_thread = max(1, count // threads)
    path = "/forms/bench" if scenario == "form" else "/r/bench"
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s", "--timeout", "10s",
               "-s", str(HERE / "capture.lua"), f"http://127.0.0.1:{port}{path}", "--", scenario, run,
               str(per_thread)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.splitlines() if x.startswith("CAPTURE-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    raw = json.loads(line.removeprefix("CAPTURE-RESULT "))
    return {
        "requests": raw["requests"], "sent": raw["sent"], "rps": raw["requests"] / raw["seconds"],
        "p50": raw["p50"], "p99": raw["p99"], "statuses": {int(k): v for k, v in raw["statuses"].items()},
        "errors": {k: v for k, v in raw["errors"].items() if v},
        "client_cpu": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / raw["seconds"],
    }  # fmt: skip


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


async def _python_load(port: int, make_request, count: int, concurrency: int, seconds: float):  # type: ignore[no-untyped-def]
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

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, next_index


def python_load(port: int, scenario: str, run: str, count: int, connections: int, seconds: float,
                threads: int) -> dict[str, Any]:  # fmt: skip
    """The fallback generator (no wrk): asyncio in this process, raw keep-alive HTTP/1.1."""
    make = form_request(run) if scenario == "form" else redirect_request
    cpu, start = time.process_time(), time.perf_counter()
    latencies, statuses, sent = asyncio.run(_python_load(port, make, count, connections, seconds))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "sent": sent, "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000, "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "statuses": statuses, "errors": {}, "client_cpu": (time.process_time() - cpu) / elapsed,
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


# -- servers and measurement --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    kind: str, url: str, workers: int, checkout: Path = HERE.parent
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server with *checkout*'s crmcore and wait until every worker process answers (or 60 s)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout), "CRMCORE_BENCH_CHECKOUT": str(checkout)}
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", kind, url, str(port),
                                str(workers)], env=env)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(worker_pids(process)) >= (workers if workers > 1 else 0):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        return process, port
            except OSError:
                pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the {kind} server did not start")


def worker_pids(process: subprocess.Popen[bytes]) -> list[int]:
    """The server's own process and its worker processes (uvicorn ``--workers``)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return pids


def server_cpu(process: subprocess.Popen[bytes]) -> float:
    """CPU seconds used so far by the server and its workers (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in [process.pid, *worker_pids(process)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
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


def settle(crm, run: str) -> int:  # type: ignore[no-untyped-def]
    """The form rows of *run* once the server has finished the requests still in flight."""
    rows, stable = form_rows(crm, run), 0
    while stable < 3:
        time.sleep(0.2)
        now = form_rows(crm, run)
        stable = stable + 1 if now == rows else 0
        rows = now
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--full", action="store_true",
        help="50,000 requests per scenario (default 20,000: the 10 s bound decides up to 2,000 requests/s).",
    )  # fmt: skip
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="Time bound per scenario (x3 with --full).")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds of each server (medians).")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes on PostgreSQL (default: one per core).",
    )
    parser.add_argument(
        "--sqlite-workers",
        type=int,
        default=1,
        help="uvicorn worker processes on SQLite (default 1: one writer at a time).",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="Load generator: wrk (C) when installed, else the Python one.",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads.")
    parser.add_argument("--scenarios", default="form,redirect", help="Which of form,redirect to run.")
    parser.add_argument(
        "--other-checkout",
        type=Path,
        help="Also serve crmcore from this checkout (e.g. /work/main) in every round, to compare with.",
    )
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "URL", "PORT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]), int(args.serve[3]))
        return
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
        if generator == "python":
            print("note: wrk is not installed (make system-deps installs it): the Python load generator runs "
                  "in this process and takes CPU from the servers on a small machine")  # fmt: skip
    load = wrk_load if generator == "wrk" else python_load
    scenarios = [s for s in ("form", "redirect") if s in args.scenarios.split(",")]
    count = 50_000 if args.full else 20_000
    seconds = args.seconds * (3 if args.full else 1)
    stack = "uvloop + httptools" if find_spec("uvloop") and find_spec("httptools") else "asyncio + h11"
    client = f"wrk, {args.threads} thread" if generator == "wrk" else "Python asyncio generator"
    load_before = os.getloadavg()
    report = Report(f"Capture over HTTP: {count:,} requests max, {args.connections} connections, "
                    f"{seconds:.0f} s bound, uvicorn ({stack}; {args.workers} workers on PostgreSQL, "
                    f"{args.sqlite_workers} on SQLite), load generator: {client}, {args.rounds} alternating "
                    f"rounds (medians)")  # fmt: skip
    for backend in args.backends.split(","):
        url = scratch_sqlite("capture.db") if backend == "sqlite" else scratch_postgresql("crmbench_capture")
        if url is None:
            continue
        workers = args.sqlite_workers if backend == "sqlite" else args.workers
        print(f"\n{backend} ({workers} worker{'s' if workers > 1 else ''}, {client}):")
        crm = prepare(url)
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        accepted = rows = sent = 0
        # bare, crm, bare, crm, ...: a change in the machine's load weighs on both alike
        kinds = ("bare", "crm", "other") if args.other_checkout else ("bare", "crm")
        for kind in kinds * args.rounds:
            checkout = args.other_checkout.resolve() if kind == "other" else HERE.parent
            process, port = start_server(kind, url, workers, checkout)
            try:
                for scenario in scenarios:
                    load(port, scenario, uuid.uuid4().hex[:8], 100 * args.connections, args.connections,
                         seconds, args.threads)  # warm-up: every worker, its pool, its caches  # fmt: skip
                    run = uuid.uuid4().hex[:8]
                    cpu = server_cpu(process)
                    result = load(port, scenario, run, count, args.connections, seconds, args.threads)
                    result["server_cpu"] = (server_cpu(process) - cpu) / result["requests"] * 1000
                    if scenario == "form" and kind != "bare":
                        result["rows"] = settle(crm, run)
                        accepted += result["statuses"].get(303, 0)
                        rows += result["rows"]
                        sent += result["sent"]
                    results.setdefault((kind, scenario), []).append(result)
                    print(f"  {kind:5} {scenario:8} {result['rps']:8.0f} req/s  p50 {result['p50']:6.1f} ms  "
                          f"p99 {result['p99']:6.1f} ms  server CPU {result['server_cpu']:.2f} ms/req  "
                          f"client CPU {result['client_cpu']:.0%}  {result['statuses']}"
                          + (f"  errors {result['errors']}" if result["errors"] else "")
                          + (f"  rows {result['rows']}" if "rows" in result else ""))  # fmt: skip
            finally:
                stop(process)
        for scenario, target in (("form", ">= 0.5 of bare; PG >= 1,000/s"),
                                 ("redirect", ">= 0.5 of bare; >= 2,000/s")):  # fmt: skip
            if scenario not in scenarios:
                continue
            ours, bare = results[("crm", scenario)], results[("bare", scenario)]

            def median(runs: list[dict[str, Any]], key: str) -> float:
                return statistics.median(r[key] for r in runs)

            report.add(f"{backend} {scenario} throughput", median(ours, "rps"), "req/s", median(bare, "rps"), target)
            report.add(f"{backend} {scenario} p50", median(ours, "p50"), "ms", median(bare, "p50"), "",
                       higher_is_better=False)  # fmt: skip
            p99_target = "< 50 ms (PG)" if scenario == "form" else ""
            report.add(f"{backend} {scenario} p99", median(ours, "p99"), "ms", median(bare, "p99"), p99_target,
                       higher_is_better=False)  # fmt: skip
            report.add(f"{backend} {scenario} server CPU", median(ours, "server_cpu"), "ms/req",
                       median(bare, "server_cpu"), "", higher_is_better=False)  # fmt: skip
            if args.other_checkout:
                other = results[("other", scenario)]
                name = args.other_checkout.name
                report.add(f"{backend} {scenario} throughput, {name}", median(other, "rps"), "req/s",
                           median(bare, "rps"), "against bare")  # fmt: skip
                report.add(f"{backend} {scenario} p99, {name}", median(other, "p99"), "ms", median(bare, "p99"), "",
                           higher_is_better=False)  # fmt: skip
                report.add(f"{backend} {scenario} server CPU, {name}", median(other, "server_cpu"), "ms/req",
                           median(bare, "server_cpu"), "", higher_is_better=False)  # fmt: skip
                report.add(f"{backend} {scenario} throughput, this checkout against {name}", median(ours, "rps"),
                           "req/s", median(other, "rps"), "")  # fmt: skip
        # A request still in flight when the generator stopped may have written its row unanswered:
        # every 303 has its row when accepted <= rows (and rows <= sent).
        verdict = "no lost submission" if accepted <= rows <= sent else "MISMATCH"
        print(f"  {backend}: {accepted} submissions answered 303, {rows} form rows, {sent} sent "
              f"({rows - accepted} written but unanswered when the generator stopped): {verdict}")  # fmt: skip
        crm.dispose()
    load_after = os.getloadavg()
    report.print()
    print(f"\nload average {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
