"""Benchmark: survey results (NPS, CSAT, CES, response rate) in SQL, against hand-written SQL.

    python bench/surveys.py                  # 100,000 responses, SQLite and PostgreSQL
    python bench/surveys.py --full           # 1,000,000 responses (target: < 1 s per result)
    python bench/surveys.py --backend sqlite --responses 300000

Generates three surveys (NPS, CSAT, CES), 1.25 invitations per response and the
responses (headline score on the row, spread over one year and 50 agents), then
times ``crm.reports.run("surveys.results", ...)`` — through the report framework,
typed rows included — by survey, by month and by agent, each alternating with the
best hand-written SQL for the same figures on the same tables (which must give the
same numbers). Medians of ``--runs`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import scratch_postgresql, scratch_sqlite
from sqlalchemy import insert, text

from crmcore import CRM

START = datetime(2025, 1, 1, tzinfo=UTC)
KINDS = (("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7))
CHUNK = 20_000


def generate(crm: CRM, responses: int, seed: int) -> None:
    """Contacts, agents, three active surveys, invitations and responses, inserted in bulk."""
    from crmcore_surveys import surveys
    from crmcore_surveys.models import Invitation, SurveyResponse

    from crmcore.models import Contact, User

    rng = random.Random(seed)
    service = surveys(crm).surveys
    survey_ids = {}
    for kind, _low, _high in KINDS:
        question = {"key": "score", "kind": kind, "text": "Score?"}
        survey_ids[kind] = service.create({"key": kind, "title": kind.upper(), "questions": [question]}).id
        service.activate(kind)
    contacts = max(1, responses // 2)
    with crm.engine.begin() as connection:
        connection.execute(insert(User), [{"email": f"agent{n}@example.com", "name": f"Agent {n}", "role": "agent",
                                           "active": True, "created_at": START} for n in range(50)])  # fmt: skip
        agent_ids = [row[0] for row in connection.execute(text("SELECT id FROM crm_user ORDER BY id"))]
        for first in range(0, contacts, CHUNK):
            connection.execute(insert(Contact), [
                {"email": f"c{n}@example.com", "email_normalized": f"c{n}@example.com", "stage": "customer",
                 "stage_changed_at": START, "created_at": START, "updated_at": START, "custom": {}, "score": 0,
                 "do_not_contact": False, "do_not_track": False}
                for n in range(first, min(contacts, first + CHUNK))])  # fmt: skip
        low_id = connection.execute(text("SELECT min(id) FROM contact")).scalar() or 1
    invitations = int(responses * 1.25)
    made = 0
    year = 365 * 86400
    with crm.engine.begin() as connection:
        next_id = 1
        for first in range(0, invitations, CHUNK):
            invitation_rows, response_rows = [], []
            for n in range(first, min(invitations, first + CHUNK)):
                kind, low, high = KINDS[n % 3]
                at = START + timedelta(seconds=rng.randrange(year))
                answered = (made < responses and rng.random() < 0.8) or (invitations - n) <= (responses - made)
                agent = agent_ids[n % len(agent_ids)]
                invitation_rows.append({
                    "id": next_id, "survey_id": survey_ids[kind], "contact_id": low_id + n % contacts, "status": "sent",
                    "source": "bench", "subject_kind": "ticket", "subject_id": n, "agent_id": agent,
                    "product": f"P-{n % 20}", "channel": ("email", "phone", "chat")[n % 3], "language": "en",
                    "created_at": at, "send_at": at, "sent_at": at, "responded": answered})  # fmt: skip
                if answered:
                    made += 1
                    response_rows.append({
                        "survey_id": survey_ids[kind], "invitation_id": next_id, "contact_id": low_id + n % contacts,
                        "subject_kind": "ticket", "subject_id": n, "agent_id": agent, "product": f"P-{n % 20}",
                        "channel": invitation_rows[-1]["channel"], "language": "en",
                        "score": min(high, max(low, int(rng.triangular(low, high + 1, high * 0.8)))),
                        "complete": True, "actions": [], "submitted_at": at + timedelta(hours=rng.randrange(1, 72)),
                        "updated_at": at})  # fmt: skip
                next_id += 1
            connection.execute(insert(Invitation), invitation_rows)
            if response_rows:
                connection.execute(insert(SurveyResponse), response_rows)
            print(f"\r  generating: {made:,} responses", end="", file=sys.stderr, flush=True)
        if crm.engine.dialect.name == "sqlite":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE surveys_response")
            connection.exec_driver_sql("ANALYZE surveys_invitation")
    print(file=sys.stderr)


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


def through_framework(crm: CRM, by: str) -> list[tuple[Any, ...]]:
    """The same figures from the registered report."""
    result = crm.reports.run("surveys.results", by=by, params={"survey": "nps"})
    return [(str(r[by]), r["invitations"], r["responses"], r["nps"], r["response_rate"]) for r in result.rows]


def bench(backend: str, url: str, responses: int, runs: int, seed: int) -> list[tuple[str, float, float]]:
    crm = CRM(database_url=url, plugins=["surveys"], environment="test",
              plugin_settings={"surveys": {"quiet_days": 0}})  # fmt: skip
    crm.db_upgrade()
    started = time.perf_counter()
    generate(crm, responses, seed)
    print(f"  {backend}: generated {responses:,} responses in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out = []
    for by in ("survey", "month", "agent"):
        ours, theirs = through_framework(crm, by), hand_written(crm, by)
        if [r[:3] for r in ours] != [r[:3] for r in theirs] or any(
            (a[3] is None) != (b[3] is None) or (a[3] is not None and abs(a[3] - b[3]) > 1e-3)
            for a, b in zip(ours, theirs, strict=True)
        ):
            raise SystemExit(
                f"{backend} by {by}: the report and the hand-written SQL disagree:\n{ours[:3]}\n{theirs[:3]}"
            )
        times: dict[str, list[float]] = {"report": [], "sql": []}
        for _ in range(runs):
            for name, func in (("report", through_framework), ("sql", hand_written)):
                start = time.perf_counter()
                func(crm, by)
                times[name].append(time.perf_counter() - start)
        out.append((by, statistics.median(times["report"]), statistics.median(times["sql"])))
        print(f"  {backend} by {by}: report {out[-1][1] * 1000:,.0f} ms, hand-written {out[-1][2] * 1000:,.0f} ms",
              file=sys.stderr)  # fmt: skip
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
        for by, ours, theirs in bench(backend, url, responses, args.runs, args.seed):
            rows.append((backend, by, ours, theirs))
    print(f"\nSurvey results over {responses:,} responses ({int(responses * 1.25):,} invitations), "
          f"medians of {args.runs} runs\n")  # fmt: skip
    print("| Backend | surveys.results --by | Report (framework) | Hand-written SQL | Ratio | Target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for backend, by, ours, theirs in rows:
        print(f"| {backend} | {by} | {ours * 1000:,.0f} ms | {theirs * 1000:,.0f} ms | {ours / theirs:.2f}x | < 1 s |")


if __name__ == "__main__":
    main()
