"""Benchmark: survey results (NPS, CSAT, CES, response rate) in SQL, against hand-written SQL.

    python bench/surveys.py                  # 100,000 responses, SQLite and PostgreSQL
    python bench/surveys.py --full           # 1,000,000 responses (target: < 1 s per result)
    python bench/surveys.py --backend sqlite --responses 300000

Generates three surveys (NPS, CSAT, CES), 1.25 invitations per response and the
responses (headline score on the row, spread over one year and 50 agents) in SQL,
behind the services' back, so it then rebuilds the results' daily rollup
(``crm survey rollup``, timed). Then times ``crm.reports.run("surveys.results", ...)``
— through the report framework, typed rows included, reading the rollup — by
survey, by month and by agent, each alternating with the best hand-written SQL
for the same figures over the raw tables and over the rollup (all three must give
the same numbers). Medians of ``--runs`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_postgresql, scratch_sqlite
from sqlalchemy import text

from crmcore import CRM

KINDS = (("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7))


def generate(crm: CRM, responses: int, seed: int) -> None:
    """Contacts, agents, three active surveys, invitations and responses, generated inside the database.

    Values come from integer hashes of the row number (*seed* shifts them), so
    both databases hold the same data: 1.25 invitations per response, 80% of
    them answered, spread over 2025, 50 agents, 20 products, 3 channels.
    """
    from crmcore_surveys import surveys

    service = surveys(crm).surveys
    ids = {}
    for kind, _low, _high in KINDS:
        question = {"key": "score", "kind": kind, "text": "Score?"}
        ids[kind] = service.create({"key": kind, "title": kind.upper(), "questions": [question]}).id
        service.activate(kind)
    sqlite = crm.engine.dialect.name == "sqlite"
    invitations = responses * 5 // 4 + (1 if responses * 5 % 4 else 0)
    contacts = max(1, responses // 2)

    def at(seconds: str) -> str:
        if sqlite:
            return f"strftime('%Y-%m-%d %H:%M:%S.000000', '2025-01-01', '+' || ({seconds}) || ' seconds')"
        return f"(TIMESTAMPTZ '2025-01-01 00:00:00+00' + ({seconds}) * INTERVAL '1 second')"

    def numbers(count: int) -> tuple[str, str]:
        if sqlite:
            return f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count}) ", "seq"
        return "", f"generate_series(1, {count}) AS seq(n)"

    yes, no = ("1", "0") if sqlite else ("true", "false")
    with crm.engine.begin() as connection:

        def run(sql: str) -> None:
            connection.exec_driver_sql(sql if sqlite else sql.replace("%", "%%"))

        prefix, source = numbers(50)
        run(
            f"{prefix}INSERT INTO crm_user (email, name, role, active, created_at) "
            f"SELECT 'agent' || n || '@example.com', 'Agent ' || n, 'agent', {yes}, {at('0')} FROM {source}"
        )
        agent0 = connection.exec_driver_sql("SELECT min(id) FROM crm_user").scalar()
        prefix, source = numbers(contacts)
        run(
            f"{prefix}INSERT INTO contact (email, email_normalized, stage, stage_changed_at, created_at, updated_at,"
            f" custom, score, do_not_contact, do_not_track) SELECT 'c' || n || '@example.com',"
            f" 'c' || n || '@example.com', 'customer', {at('0')}, {at('0')}, {at('0')}, '{{}}', 0, {no}, {no}"
            f" FROM {source}"
        )
        contact0 = connection.exec_driver_sql("SELECT min(id) FROM contact").scalar()
        prefix, source = numbers(invitations)
        spread = f"((n + {seed}) * 2654435761) % 31536000"
        run(
            f"{prefix}INSERT INTO surveys_invitation (id, survey_id, contact_id, status, source, subject_kind,"
            f" subject_id, agent_id, product, channel, language, created_at, send_at, sent_at, responded)"
            f" SELECT n, CASE n % 3 WHEN 0 THEN {ids['nps']} WHEN 1 THEN {ids['csat']} ELSE {ids['ces']} END,"
            f" {contact0} + n % {contacts}, 'sent', 'bench', 'ticket', n, {agent0} + n % 50, 'P-' || (n % 20),"
            f" CASE n % 7 WHEN 0 THEN 'phone' WHEN 1 THEN 'chat' ELSE 'email' END, 'en',"
            f" {at(spread)}, {at(spread)}, {at(spread)}, CASE WHEN n % 5 <> 0 THEN {yes} ELSE {no} END FROM {source}"
        )
        mix = f"(i.id * 7 + i.id / 13 + {seed})"
        later = ("strftime('%Y-%m-%d %H:%M:%S.000000', i.sent_at, '+' || (i.id % 72 + 1) || ' hours')" if sqlite
                 else "i.sent_at + (i.id % 72 + 1) * INTERVAL '1 hour'")  # fmt: skip
        run(
            "INSERT INTO surveys_response (survey_id, invitation_id, contact_id, subject_kind, subject_id, agent_id,"
            " product, channel, language, score, complete, actions, submitted_at, updated_at)"
            " SELECT i.survey_id, i.id, i.contact_id, i.subject_kind, i.subject_id, i.agent_id, i.product, i.channel,"
            f" i.language, CASE i.survey_id WHEN {ids['nps']} THEN (CASE WHEN {mix} % 4 = 0 THEN {mix} % 7"
            f" ELSE 6 + {mix} % 5 END) WHEN {ids['csat']} THEN 1 + {mix} % 5 ELSE 1 + {mix} % 7 END,"
            f" {yes}, '[]', {later}, {later} FROM surveys_invitation i WHERE i.responded = {yes}"
        )
        connection.exec_driver_sql("ANALYZE")
    made = service.describe("nps")["responses"] + service.describe("csat")["responses"]
    made += service.describe("ces")["responses"]
    if made != responses:
        raise SystemExit(f"generated {made} responses, wanted {responses}")


def hand_written(crm: CRM, by: str) -> list[tuple[Any, ...]]:
    """The best plain SQL for the NPS survey's figures (the bench's baseline), grouped by *by*."""
    sqlite = crm.engine.dialect.name == "sqlite"
    month = "strftime('%Y-%m', {t})" if sqlite else "to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM')"
    key = {"survey": "'nps'", "agent": "u.email", "month": month}[by]
    join = "JOIN crm_user u ON u.id = x.agent_id" if by == "agent" else ""
    responses = f"""
        SELECT {key.format(t="x.submitted_at")} AS k, count(*),
               sum(CASE WHEN x.score >= 9 THEN 1 ELSE 0 END), sum(CASE WHEN x.score <= 6 THEN 1 ELSE 0 END)
        FROM surveys_response x {join}
        WHERE x.survey_id = :s AND x.score IS NOT NULL GROUP BY 1"""
    invited = f"""
        SELECT {key.format(t="x.sent_at")} AS k, count(*), sum(CASE WHEN x.responded THEN 1 ELSE 0 END)
        FROM surveys_invitation x {join} WHERE x.survey_id = :s AND x.status = 'sent' GROUP BY 1"""
    with crm.engine.connect() as connection:
        survey = connection.execute(text("SELECT id FROM surveys_survey WHERE key = 'nps'")).scalar()
        answers = {r[0]: r[1:] for r in connection.execute(text(responses), {"s": survey})}
        sent = {r[0]: r[1:] for r in connection.execute(text(invited), {"s": survey})}
    rows = []
    for k in sorted(set(answers) | set(sent)):
        count, promoters, detractors = answers.get(k, (0, 0, 0))
        invitations, answered = sent.get(k, (0, 0))
        nps = round((promoters - detractors) * 100.0 / count, 4) if count else None
        rows.append(
            (str(k), int(invitations), int(count), nps, round(answered / invitations, 6) if invitations else None)
        )
    return rows


def hand_written_rollup(crm: CRM, by: str) -> list[tuple[Any, ...]]:
    """The same figures by hand from the daily rollup ``surveys_daily`` (one grouped scan)."""
    sqlite = crm.engine.dialect.name == "sqlite"
    month = "strftime('%Y-%m', d.day)" if sqlite else "to_char(d.day, 'YYYY-MM')"
    key = {"survey": "'nps'", "agent": "u.email", "month": month}[by]
    join = "JOIN crm_user u ON u.id = d.agent_id" if by == "agent" else ""
    dimension = "agent" if by == "agent" else "all"
    sql = f"""
        SELECT {key} AS k, sum(d.invitations), sum(d.responses), sum(d.high), sum(d.low), sum(d.answered)
        FROM surveys_daily d {join}
        WHERE d.survey_id = (SELECT id FROM surveys_survey WHERE key = 'nps') AND d.dimension = '{dimension}'
        GROUP BY 1 ORDER BY 1"""
    with crm.engine.connect() as connection:
        rows = connection.execute(text(sql)).all()
    return [
        (str(k), int(invitations), int(count), round((high - low) * 100.0 / count, 4) if count else None,
         round(answered / invitations, 6) if invitations else None)
        for k, invitations, count, high, low, answered in rows
    ]  # fmt: skip


def through_framework(crm: CRM, by: str) -> list[tuple[Any, ...]]:
    """The same figures from the registered report."""
    result = crm.reports.run("surveys.results", by=by, params={"survey": "nps"})
    return [(str(r[by]), r["invitations"], r["responses"], r["nps"], r["response_rate"]) for r in result.rows]


def same(ours: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> bool:
    """The same keys and counts, NPS within 0.001, response rates within 1e-5."""
    if [r[:3] for r in ours] != [r[:3] for r in theirs]:
        return False
    for a, b in zip(ours, theirs, strict=True):
        for x, y, tolerance in ((a[3], b[3], 1e-3), (a[4], b[4], 1e-5)):
            if (x is None) != (y is None) or (x is not None and abs(x - y) > tolerance):
                return False
    return True


def bench(backend: str, url: str, responses: int, runs: int, seed: int) -> list[tuple[str, float, float, float]]:
    """(grouping, report, hand SQL over the raw rows, hand SQL over the rollup) medians."""
    from crmcore_surveys import surveys

    crm = CRM(database_url=url, plugins=["surveys"], environment="test",
              plugin_settings={"surveys": {"quiet_days": 0}})  # fmt: skip
    crm.db_upgrade()
    started = time.perf_counter()
    generate(crm, responses, seed)
    print(f"  {backend}: generated {responses:,} responses in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    started = time.perf_counter()
    rows = surveys(crm).surveys.rebuild_rollup()
    print(f"  {backend}: rebuilt the rollup ({rows:,} rows) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE")
    out = []
    functions = {"report": through_framework, "raw": hand_written, "rollup": hand_written_rollup}
    for by in ("survey", "month", "agent"):
        results = {name: func(crm, by) for name, func in functions.items()}
        for name in ("raw", "rollup"):
            if not same(results["report"], results[name]):
                raise SystemExit(f"{backend} by {by}: the report and the hand-written SQL ({name}) disagree:"
                                 f"\n{results['report'][:3]}\n{results[name][:3]}")  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in functions}
        for _ in range(runs):
            for name, func in functions.items():
                start = time.perf_counter()
                func(crm, by)
                times[name].append(time.perf_counter() - start)
        report, raw, rolled = (statistics.median(times[name]) for name in functions)
        out.append((by, report, raw, rolled))
        print(f"  {backend} by {by}: report {report * 1000:,.0f} ms, hand-written over the raw rows"
              f" {raw * 1000:,.0f} ms, over the rollup {rolled * 1000:,.1f} ms", file=sys.stderr)  # fmt: skip
    crm.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 responses (the issue's target size)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    responses = 1_000_000 if args.full else args.responses
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    rows = []
    for backend in backends:
        url = scratch_sqlite("surveys.db") if backend == "sqlite" else scratch_postgresql("crm_bench_surveys")
        if url is None:
            continue
        for by, ours, raw, rolled in bench(backend, url, responses, args.runs, args.seed):
            rows.append((backend, by, ours, raw, rolled))
    print(f"\nSurvey results over {responses:,} responses ({int(responses * 1.25):,} invitations), "
          f"medians of {args.runs} runs\n")  # fmt: skip
    print("| Backend | --by | Report | Hand SQL, raw rows | Hand SQL, rollup | Ratio to rollup SQL | Target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for backend, by, ours, raw, rolled in rows:
        print(
            f"| {backend} | {by} | {ours * 1000:,.1f} ms | {raw * 1000:,.0f} ms | {rolled * 1000:,.1f} ms"
            f" | {ours / rolled:.2f}x | < 1 s |"
        )


if __name__ == "__main__":
    main()
