"""The results' daily rollup (``surveys_daily``): kept exact on every write, rebuilt in SQL.

``surveys.results`` reads the rollup instead of a million responses: a few
rows per survey, local day and dimension value. Every write that changes what
the results count takes a :func:`snapshot` of the rows it touches before
changing them and calls :func:`record` after, in the same transaction, so the
rollup is exact at every commit ("today" included). :func:`rebuild` recomputes
it from the raw rows (``crm survey rollup``, the migration's backfill, data
loaded behind the services' back) in the CRM's time zone; until a rebuild, a
CRM whose zone changed computes results from the raw rows.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs
from sqlalchemy import Date, Integer, case, cast, delete, func, insert, literal, null, select, union_all, update

from crmcore.reports.sql import local_time, period_label
from crmcore_surveys.models import DailyResults, Invitation, RollupState, SurveyResponse

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

#: The dimensions the results group by besides survey and period; ``all`` rows serve those two.
DIMENSIONS = ("agent", "product", "channel", "language")
COLUMNS = {"agent": "agent_id", "product": "product", "channel": "channel", "language": "language"}
MEASURES = ("invitations", "answered", "responses", "high", "middle", "low", "satisfied", "score_total")


@attrs.frozen
class Share:
    """What one sent invitation or one scored response adds to the rollup."""

    survey_id: int
    day: date
    #: agent_id, product, channel, language
    keys: tuple[Any, ...]
    measures: tuple[tuple[str, int], ...]


Snapshot = tuple[str | None, tuple[Share, ...]]


def zone_of(session: Session) -> str | None:
    """The zone the rollup is cut in, or None before it was ever built."""
    zone: str | None = session.scalars(select(RollupState.zone).order_by(RollupState.id).limit(1)).first()
    return zone


def share(row: Invitation | SurveyResponse | None, zone: str) -> Share | None:
    """The contribution of an invitation (once sent) or a response (once scored), or None."""
    if isinstance(row, Invitation) and row.status == "sent" and row.sent_at is not None:
        at: datetime = row.sent_at
        measures = {"invitations": 1, "answered": int(bool(row.responded))}
    elif isinstance(row, SurveyResponse) and row.score is not None:
        at, score = row.submitted_at, int(row.score)
        measures = {"responses": 1, "high": int(score >= 9), "middle": int(7 <= score <= 8), "low": int(score <= 6),
                    "satisfied": int(score >= 4), "score_total": score}  # fmt: skip
    else:
        return None
    return Share(
        survey_id=row.survey_id,
        day=at.astimezone(ZoneInfo(zone)).date(),
        keys=(row.agent_id, row.product, row.channel, row.language),
        measures=tuple(measures.items()),
    )


def snapshot(session: Session, *rows: Invitation | SurveyResponse | None) -> Snapshot:
    """The rollup contributions of *rows* before a change (pass the same rows to :func:`record`)."""
    zone = zone_of(session)
    if zone is None:
        return None, ()
    return zone, tuple(s for s in (share(row, zone) for row in rows) if s is not None)


def record(session: Session, before: Snapshot, *rows: Invitation | SurveyResponse | None) -> None:
    """Apply to the rollup the difference between *rows* now and their :func:`snapshot`.

    Rows are updated in a fixed order (so two writers never wait on each other
    in opposite orders); a missing row is inserted.
    """
    zone, old = before
    if zone is None:
        return
    new = tuple(s for s in (share(row, zone) for row in rows) if s is not None)
    deltas: dict[tuple[Any, ...], Counter[str]] = {}
    for sign, shares in ((-1, old), (1, new)):
        for item in shares:
            for dimension, value in (("all", None), *zip(DIMENSIONS, item.keys, strict=True)):
                counter = deltas.setdefault((item.survey_id, item.day, dimension, value), Counter())
                for name, amount in item.measures:
                    counter[name] += sign * amount
    for key in sorted(deltas, key=repr):
        change = {name: amount for name, amount in deltas[key].items() if amount}
        if change:
            _add(session, key, change)


def _add(session: Session, key: tuple[Any, ...], change: dict[str, int]) -> None:
    survey_id, day, dimension, value = key
    where = [DailyResults.survey_id == survey_id, DailyResults.dimension == dimension, DailyResults.day == day]
    if dimension != "all":
        column = getattr(DailyResults, COLUMNS[dimension])
        where.append(column.is_(None) if value is None else column == value)
    found = session.scalars(select(DailyResults.id).where(*where).order_by(DailyResults.id).limit(1)).first()
    if found is not None:
        values = {name: getattr(DailyResults, name) + amount for name, amount in change.items()}
        session.execute(update(DailyResults).where(DailyResults.id == found).values(**values))
        return
    keys = {COLUMNS[dimension]: value} if dimension != "all" else {}
    session.execute(
        insert(DailyResults).values(
            survey_id=survey_id, day=day, dimension=dimension, **keys, **dict.fromkeys(MEASURES, 0) | change
        )
    )


def rebuild(connection: Connection, zone: str, now: datetime) -> int:
    """Recompute the whole rollup from invitations and responses, cut in *zone*; the rows written."""
    dialect = {"mysql": "mariadb"}.get(connection.dialect.name, connection.dialect.name)

    def day(column: Any) -> Any:
        label = period_label(local_time(column, dialect, zone, None), "day", dialect)
        return label if dialect == "sqlite" else cast(label, Date)  # SQLite keeps dates as text

    def zero() -> Any:
        return literal(0, Integer)

    score = SurveyResponse.score
    invited = select(
        Invitation.survey_id, day(Invitation.sent_at).label("day"), Invitation.agent_id, Invitation.product,
        Invitation.channel, Invitation.language, literal(1, Integer).label("invitations"),
        case((Invitation.responded, 1), else_=0).label("answered"), *(zero().label(m) for m in MEASURES[2:]),
    ).where(Invitation.status == "sent", Invitation.sent_at.is_not(None))  # fmt: skip
    answered = select(
        SurveyResponse.survey_id, day(SurveyResponse.submitted_at).label("day"), SurveyResponse.agent_id,
        SurveyResponse.product, SurveyResponse.channel, SurveyResponse.language, zero().label("invitations"),
        zero().label("answered"), literal(1, Integer).label("responses"),
        case((score >= 9, 1), else_=0).label("high"), case((score.between(7, 8), 1), else_=0).label("middle"),
        case((score <= 6, 1), else_=0).label("low"), case((score >= 4, 1), else_=0).label("satisfied"),
        score.label("score_total"),
    ).where(score.is_not(None))  # fmt: skip
    rows = union_all(invited, answered).subquery()
    connection.execute(delete(DailyResults))
    connection.execute(delete(RollupState))
    connection.execute(insert(RollupState).values(zone=zone, rebuilt_at=now))
    targets = ["survey_id", "day", "dimension", "agent_id", "product", "channel", "language", *MEASURES]
    for dimension in ("all", *DIMENSIONS):
        kept = [rows.c[COLUMNS[dimension]]] if dimension != "all" else []
        statement = select(
            rows.c.survey_id, rows.c.day, literal(dimension),
            *(rows.c[COLUMNS[d]] if d == dimension else null() for d in DIMENSIONS),
            *(func.sum(rows.c[m]) for m in MEASURES),
        ).group_by(rows.c.survey_id, rows.c.day, *kept)  # fmt: skip
        connection.execute(insert(DailyResults).from_select(targets, statement))
    return int(connection.scalar(select(func.count()).select_from(DailyResults)) or 0)
