"""``crm survey``: create from a file, list, show, activate, close, send to a segment, results."""

from __future__ import annotations

from typing import Any

import click

from crmcore.cli import get_crm
from crmcore.cli.output import emit, emit_record, format_option, to_json

RESULT_FORMATS = ("table", "json", "csv", "html")


def _service() -> Any:
    from crmcore_surveys import surveys

    return surveys(get_crm()).surveys


def survey_row(survey: Any) -> dict[str, Any]:
    """A survey as a listing row."""
    return {"key": survey.key, "title": survey.title, "state": survey.state, "headline": survey.headline_kind,
            "anonymous": survey.anonymous, "created_at": survey.created_at}  # fmt: skip


def _done(fmt: str, text: str, record: dict[str, Any]) -> None:
    if fmt == "table":
        click.echo(text)
    else:
        emit_record(record, fmt)


@click.group()
def survey() -> None:
    """NPS, CSAT and CES surveys: definitions, sending, results."""


@survey.command("create")
@click.option("--file", "path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A survey definition in YAML or JSON.")  # fmt: skip
@click.option("--replace", is_flag=True, help="Replace the definition of a draft with the same key.")
@format_option
def survey_create(path: str, replace: bool, fmt: str) -> None:
    """Create a survey (a draft) from a definition file.

    \b
    Example:
      crm survey create --file support-csat.yaml
    """
    row = _service().create(path, replace=replace)
    _done(fmt, f"created survey {row.key} ({row.state})", survey_row(row))


@survey.command("list")
@click.option("--state", type=click.Choice(("draft", "active", "closed")), help="Only surveys in this state.")
@format_option
def survey_list(state: str | None, fmt: str) -> None:
    """List surveys.

    \b
    Example:
      crm survey list --state active
    """
    emit([survey_row(s) for s in _service().list(state=state)], fmt,
         ["key", "title", "state", "headline", "anonymous", "created_at"])  # fmt: skip


@survey.command("show")
@click.argument("key")
@format_option
def survey_show(key: str, fmt: str) -> None:
    """Show a survey: questions, triggers (dormant ones marked), invitations and responses.

    \b
    Example:
      crm survey show support-csat
    """
    info = _service().describe(key)
    if fmt != "table":
        if fmt == "json":
            click.echo(to_json(info))
        else:
            emit(info["questions"], fmt)
        return
    click.echo(f"{info['key']}: {info['title']} [{info['state']}]" + (" anonymous" if info["anonymous"] else ""))
    click.echo(f"languages: {', '.join(info['languages'])}; invitations: {info['invitations']}; "
               f"responses: {info['responses']}")  # fmt: skip
    for q in info["questions"]:
        click.echo(f"  {q['key']} ({q['kind']}{', required' if q['required'] else ''}): {q['text']}")
    for t in info["triggers"]:
        state = "" if t["active"] else " (dormant: no enabled plugin publishes it)"
        click.echo(f"  on {t['hook']} after {t['delay']}s, sample {t['sample']:g}{state}")


@survey.command("activate")
@click.argument("key")
@format_option
def survey_activate(key: str, fmt: str) -> None:
    """Start sending invitations and accepting answers.

    \b
    Example:
      crm survey activate support-csat
    """
    row = _service().activate(key)
    _done(fmt, f"survey {row.key} is active", survey_row(row))


@survey.command("close")
@click.argument("key")
@format_option
def survey_close(key: str, fmt: str) -> None:
    """Stop sending and answering; the results stay.

    \b
    Example:
      crm survey close support-csat
    """
    row = _service().close(key)
    _done(fmt, f"survey {row.key} is closed", survey_row(row))


@survey.command("send")
@click.argument("key")
@click.option("--segment", required=True, metavar="NAME", help="Invite every contact of this segment.")
@format_option
def survey_send(key: str, segment: str, fmt: str) -> None:
    """Invite a segment's contacts (consent and the quiet period apply).

    \b
    Example:
      crm survey send nps-q1 --segment customers-de
    """
    counts = _service().send_to_segment(key, segment)
    if fmt == "table":
        click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    else:
        emit_record(counts, fmt)


@survey.command("rollup")
@format_option
def survey_rollup(fmt: str) -> None:
    """Rebuild the daily rollup the results read, from the raw invitations and responses.

    Every write keeps the rollup exact; rebuild it after changing the CRM's time
    zone (until then results are computed from the raw rows) or after loading
    rows into the surveys tables by hand.

    \b
    Example:
      crm survey rollup
    """
    rows = _service().rebuild_rollup()
    zone = get_crm().settings.timezone
    _done(fmt, f"rebuilt the survey results rollup: {rows} rows ({zone})", {"rows": rows, "zone": zone})


@survey.command("results")
@click.argument("key")
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (CRM time zone).")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day, included (CRM time zone).")
@click.option(
    "--by",
    default="survey",
    show_default=True,
    help="survey, day, week, month, quarter, year, agent, product, channel, language, segment.",
)
@click.option("--segment", metavar="NAME", help="Only the contacts of this segment.")
@click.option("--question", metavar="KEY", help="Score distribution (or choices, or verbatims) of one question.")
@click.option("--format", "fmt", type=click.Choice(RESULT_FORMATS), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), metavar="FILE", help="Write to FILE instead of stdout.")
def survey_results(key: str, start: str | None, end: str | None, by: str, segment: str | None,
                   question: str | None, fmt: str, output: str | None) -> None:  # fmt: skip
    """NPS, CSAT %, CES average, response rate; or one question's distribution or verbatims.

    \b
    Examples:
      crm survey results support-csat --by month
      crm survey results nps-q1 --by agent --format csv
      crm survey results nps-q1 --by segment --format html --output nps.html
      crm survey results support-csat --question why
    """
    from pathlib import Path

    from crmcore.reports.render import render
    from crmcore_surveys.reports import run_results

    crm = get_crm()
    result = run_results(crm, key, start=start, end=end, by=by, segment=segment, question=question)
    text = render(crm, result, fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
