"""Survey results in SQL, registered with the report framework (``crm report run surveys.results``).

* ``surveys.results``: invitations sent, responses, response rate, NPS (% promoters
  − % detractors, from −100 to 100), promoters/passives/detractors, CSAT (% of 4-5),
  CES average, by survey, period, agent, product, channel or language.
* ``surveys.distribution``: how often each score (or option) of one question was given.
* ``surveys.verbatims``: the free-text answers, newest first.

Each is one statement the database aggregates: the headline score of every
response sits on ``surveys_response`` (indexed by survey, time, score), the
other answers on ``surveys_answer``. ``crm survey results`` runs them and adds
``--by segment`` (one run per segment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, case, cast, func, literal, select

from crmcore.errors import ValidationError
from crmcore.i18n import N_
from crmcore.models import User
from crmcore.reports import Chart, Column, Param, Report, ReportQuery, count, ratio
from crmcore.reports.common import union, with_periods
from crmcore_surveys import rollup
from crmcore_surveys.models import Answer, DailyResults, Invitation, Survey, SurveyResponse

if TYPE_CHECKING:
    from sqlalchemy.sql import Select

    from crmcore.crm import CRM
    from crmcore.reports.model import ReportResult

GROUPS = (N_("survey"), N_("agent"), N_("product"), N_("channel"), N_("language"))
SURVEY_PARAM = Param(name=N_("survey"), help="Only this survey (its key); default: every survey.")


def _survey(query: ReportQuery) -> Survey | None:
    key = query.param("survey")
    if not key:
        return None
    found: Survey | None = query.session.scalars(select(Survey).where(Survey.key == str(key).strip().lower())).first()
    if found is None:
        raise ValidationError({"survey": f"no survey {key!r}"})
    return found


def _survey_id(query: ReportQuery) -> int | None:
    survey = _survey(query)
    return survey.id if survey is not None else None


def _key(query: ReportQuery, table: Any, at: Any, survey: Survey | None) -> Any:
    """The grouping key of an invitation or response row."""
    if query.is_period:
        return query.period(at)
    if query.by == "survey":
        return literal(survey.key, String(80)) if survey is not None else Survey.key
    if query.by == "agent":
        return func.coalesce(User.email, cast(table.agent_id, String))
    return getattr(table, query.by)


MEASURES = ("invitations", "answered", "responses", "nps_answers", "promoters", "passives", "detractors",
            "csat_answers", "satisfied", "ces_answers", "ces_total")  # fmt: skip


def _counted(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _part(query: ReportQuery, table: Any, at: Any, survey: Survey | None, *, responses: bool) -> Select[Any]:
    """One side of the UNION, already aggregated per key: sent invitations, or given responses.

    Each side is grouped on its own (a scan of one covering index per survey:
    with one survey its kind and key are constants, no join), so the union
    that sums them holds a few rows per key, never a row per response.
    """
    key = _key(query, table, at, survey)
    zero = literal(0)
    if responses:
        kind = literal(survey.headline_kind, String(10)) if survey is not None else Survey.headline_kind
        score = table.score
        values = {
            "invitations": zero, "answered": zero, "responses": func.count(),
            "nps_answers": _counted(kind == "nps"), "promoters": _counted(and_(kind == "nps", score >= 9)),
            "passives": _counted(and_(kind == "nps", score.between(7, 8))),
            "detractors": _counted(and_(kind == "nps", score <= 6)),
            "csat_answers": _counted(kind == "csat"), "satisfied": _counted(and_(kind == "csat", score >= 4)),
            "ces_answers": _counted(kind == "ces"), "ces_total": func.sum(case((kind == "ces", score), else_=0)),
        }  # fmt: skip
        condition = and_(score.is_not(None), query.in_range(at))
    else:
        values = dict.fromkeys(MEASURES, zero)
        values["invitations"], values["answered"] = func.count(), _counted(table.responded)
        condition = and_(table.status == "sent", query.in_range(at))
    statement = (
        select(key.label("key"), *(value.label(name) for name, value in values.items()))
        .select_from(table)
        .where(condition)
    )
    if not (query.by == "survey" and survey is not None):  # a constant key needs no grouping
        statement = statement.group_by(key)
    if survey is not None:
        statement = statement.where(table.survey_id == survey.id)
    else:
        statement = statement.join(Survey, Survey.id == table.survey_id)
    if query.segment is not None:
        statement = statement.where(query.in_segment(table.contact_id))
    if query.by == "agent":
        statement = statement.outerjoin(User, User.id == table.agent_id)
    return statement


def _from_rollup(query: ReportQuery, survey: Survey | None) -> Select[Any]:
    """The measures per group from the daily rollup: a few rows per survey, day and dimension value."""
    table = DailyResults
    key = query.date_period(table.day) if query.is_period else _key(query, table, table.day, survey)
    kind = literal(survey.headline_kind, String(10)) if survey is not None else Survey.headline_kind

    def of(wanted: str, column: Any) -> Any:
        return func.sum(case((kind == wanted, column), else_=0))

    values = {
        "invitations": func.sum(table.invitations), "answered": func.sum(table.answered),
        "responses": func.sum(table.responses), "nps_answers": of("nps", table.responses),
        "promoters": of("nps", table.high), "passives": of("nps", table.middle), "detractors": of("nps", table.low),
        "csat_answers": of("csat", table.responses), "satisfied": of("csat", table.satisfied),
        "ces_answers": of("ces", table.responses), "ces_total": of("ces", table.score_total),
    }  # fmt: skip
    dimension = query.by if query.by in rollup.DIMENSIONS else "all"
    statement = (
        select(key.label("key"), *(value.label(name) for name, value in values.items()))
        .select_from(table)
        .where(table.dimension == dimension, query.in_dates(table.day))
        # one survey's key is a constant: group by its id instead
        .group_by(table.survey_id if query.by == "survey" and survey is not None else key)
        # a group whose rows all cancelled out (a response's score removed) is not shown, as before
        .having(func.sum(table.invitations) + func.sum(table.responses) > 0)
    )
    if survey is not None:
        statement = statement.where(table.survey_id == survey.id)
    else:
        statement = statement.join(Survey, Survey.id == table.survey_id)
    if query.by == "agent":
        statement = statement.outerjoin(User, User.id == table.agent_id)
    return statement


def uses_rollup(query: ReportQuery) -> bool:
    """Whether the results can be read from the rollup: no segment, and days cut in the CRM's zone."""
    return query.segment is None and rollup.zone_of(query.session) == query.zone_name


def build_results(query: ReportQuery) -> Select[Any]:
    """Invitations, responses and the headline figures per group.

    From the daily rollup when it serves the query; otherwise (a segment, or a
    rollup cut in another zone) from two grouped scans of the raw rows, summed.
    """
    survey = _survey(query)
    if uses_rollup(query):
        parts = _from_rollup(query, survey).subquery()
    else:
        parts = union(
            _part(query, Invitation, Invitation.sent_at, survey, responses=False),
            _part(query, SurveyResponse, SurveyResponse.submitted_at, survey, responses=True),
        )
    total = {name: func.sum(parts.c[name]) for name in MEASURES}
    return (
        select(
            parts.c.key,
            total["invitations"].label("invitations"),
            total["responses"].label("responses"),
            ratio(total["answered"], total["invitations"]).label("response_rate"),
            (ratio(total["promoters"] - total["detractors"], total["nps_answers"]) * 100).label("nps"),
            ratio(total["promoters"], total["nps_answers"]).label("promoters"),
            ratio(total["passives"], total["nps_answers"]).label("passives"),
            ratio(total["detractors"], total["nps_answers"]).label("detractors"),
            ratio(total["satisfied"], total["csat_answers"]).label("csat"),
            ratio(total["ces_total"], total["ces_answers"]).label("ces"),
        )
        .group_by(parts.c.key)
        .order_by(parts.c.key)
    )


def build_distribution(query: ReportQuery) -> Select[Any]:
    """How many answers gave each score or option of one question."""
    survey_id = _survey_id(query)
    if survey_id is None:
        raise ValidationError({"survey": "give the survey (--param survey=KEY)"})
    survey = query.session.get(Survey, survey_id)
    assert survey is not None
    questions = {q["key"]: q for q in survey.definition["questions"]}
    wanted = query.param("question") or next(
        (q["key"] for q in survey.definition["questions"] if q["kind"] != "text"), None
    )
    if wanted not in questions or questions[wanted]["kind"] == "text":
        choices = ", ".join(k for k, q in questions.items() if q["kind"] != "text")
        raise ValidationError({"question": f"no scored or choice question {wanted!r}; questions: {choices}"})
    value = Answer.score if questions[wanted]["kind"] in ("nps", "csat", "ces") else Answer.choice
    statement = (
        select(value.label("key"), func.count().label("answers"))
        .select_from(Answer)
        .join(SurveyResponse, SurveyResponse.id == Answer.response_id)
        .where(Answer.survey_id == survey_id, Answer.question == wanted, query.in_range(SurveyResponse.submitted_at))
    )
    if query.segment is not None:
        statement = statement.where(query.in_segment(SurveyResponse.contact_id))
    counts = statement.group_by(value).subquery()
    total = select(func.sum(counts.c.answers)).scalar_subquery()
    return select(counts.c.key, counts.c.answers, ratio(counts.c.answers, total).label("share")).order_by(counts.c.key)


def build_verbatims(query: ReportQuery) -> Select[Any]:
    """Free-text answers with their survey, question and headline score, newest first."""
    survey_id = _survey_id(query)
    statement: Any = (
        select(
            SurveyResponse.submitted_at.label("key"),
            Survey.key.label("survey"),
            Answer.question.label("question"),
            SurveyResponse.score.label("score"),
            Answer.text.label("answer"),
        )
        .select_from(Answer)
        .join(SurveyResponse, SurveyResponse.id == Answer.response_id)
        .join(Survey, Survey.id == Answer.survey_id)
        .where(Answer.kind == "text", Answer.text.is_not(None), query.in_range(SurveyResponse.submitted_at))
        .order_by(SurveyResponse.submitted_at.desc(), Answer.id.desc())
        .limit(int(query.param("limit") or 200))
    )
    if survey_id is not None:
        statement = statement.where(Answer.survey_id == survey_id)
    if query.segment is not None:
        statement = statement.where(query.in_segment(SurveyResponse.contact_id))
    verbatims: Select[Any] = statement
    return verbatims


RESULTS = Report(
    name="surveys.results",
    title=N_("Survey results: NPS, CSAT, CES and response rate"),
    description=N_(
        "Invitations sent in the range and how many were answered (response rate), and the headline scores of "
        "responses given in the range: NPS (% promoters 9-10 minus % detractors 0-6, from -100 to 100), CSAT "
        "(share of 4 and 5), CES average (1 very difficult to 7 very easy). Anonymous responses count, but not "
        "under a segment."
    ),
    build=build_results,
    columns=(
        count("invitations", N_("Invitations")),
        count("responses", N_("Responses")),
        Column(name="response_rate", label=N_("Response rate"), type="percent"),
        Column(name="nps", label=N_("NPS"), type="number"),
        Column(name="promoters", label=N_("Promoters"), type="percent"),
        Column(name="passives", label=N_("Passives"), type="percent"),
        Column(name="detractors", label=N_("Detractors"), type="percent"),
        Column(name="csat", label=N_("CSAT"), type="percent"),
        Column(name="ces", label=N_("CES"), type="number"),
    ),
    groupings=with_periods(*GROUPS),
    default_by="survey",
    params=(SURVEY_PARAM,),
    chart=Chart(kind="bar", y=("responses",)),
    dates="invitations by sending time, responses by answering time",
    main=True,
)

DISTRIBUTION = Report(
    name="surveys.distribution",
    title=N_("Survey answer distribution"),
    description=N_("How many answers gave each score (or option) of one question, and their share."),
    build=build_distribution,
    columns=(count("answers", N_("Answers")), Column(name="share", label=N_("Share"), type="percent")),
    groupings=(N_("answer"),),
    default_by="answer",
    params=(SURVEY_PARAM,
            Param(name=N_("question"), help="The question's key; default: the first scored or choice one.")),
    chart=Chart(kind="bar", y=("answers",)),
    dates="responses by answering time",
)

VERBATIMS = Report(
    name="surveys.verbatims",
    title=N_("Survey verbatims"),
    description=N_("What respondents wrote in free-text questions, newest first, with the headline score."),
    build=build_verbatims,
    columns=(
        Column(name="survey", label=N_("Survey")),
        Column(name="question", label=N_("Question")),
        Column(name="score", label=N_("Score"), type="integer"),
        Column(name="answer", label=N_("Answer")),
    ),
    groupings=(N_("submitted_at"),),
    default_by="submitted_at",
    params=(SURVEY_PARAM, Param(name=N_("limit"), help="At most this many answers (default 200).", convert=int)),
    dates="responses by answering time",
)


def registered_reports() -> list[Report]:
    """The reports the plugin registers."""
    return [RESULTS, DISTRIBUTION, VERBATIMS]


def run_results(
    crm: CRM,
    survey: str,
    *,
    start: str | None = None,
    end: str | None = None,
    by: str = "survey",
    segment: str | None = None,
    question: str | None = None,
) -> ReportResult:
    """What ``crm survey results`` shows: the results (or one question's distribution or verbatims)."""
    from crmcore_surveys import surveys

    row = surveys(crm).surveys.get(survey)
    if question is not None:
        kinds = {q["key"]: q["kind"] for q in row.definition["questions"]}
        if kinds.get(question) == "text":
            return crm.reports.run("surveys.verbatims", start=start, end=end, segment=segment,
                                   params={"survey": row.key})  # fmt: skip
        return crm.reports.run("surveys.distribution", start=start, end=end, segment=segment,
                               params={"survey": row.key, "question": question})  # fmt: skip
    if by != "segment":
        return crm.reports.run("surveys.results", start=start, end=end, by=by, segment=segment,
                               params={"survey": row.key})  # fmt: skip
    return _by_segment(crm, row.key, start, end)


def _by_segment(crm: CRM, key: str, start: str | None, end: str | None) -> ReportResult:
    """One run per segment, as rows keyed by segment name."""
    import attrs

    with crm.transaction(readonly=True) as ctx:
        names = sorted(set(crm.plugins.collect("crm_segment_names", ctx=ctx)))
    if not names:
        raise ValidationError({"by": "no segments are defined"})
    results = [crm.reports.run("surveys.results", start=start, end=end, segment=name, params={"survey": key})
               for name in names]  # fmt: skip
    rows = []
    for name, result in zip(names, results, strict=True):
        for item in result.rows or [{c.name: c.empty for c in RESULTS.columns}]:
            rows.append({"segment": name, **{c.name: item.get(c.name) for c in RESULTS.columns}})
    first = results[0]
    key_column = Column(name="segment", label=N_("segment"), type="text")
    return attrs.evolve(first, columns=(key_column, *RESULTS.columns), rows=rows,
                        parameters={**first.parameters, "by": "segment", "segment": None})  # fmt: skip
