"""Web routes under ``/surveys``: the answer page of an invitation and the email's score links.

``GET /surveys/r/<token>`` shows the questions (in the contact's language, or
``?lang=``), ``POST`` stores them (422 with a message per field and what was
typed kept), ``GET /surveys/r/<token>/<score>`` stores the headline score in
one click and shows the rest of the questions. Plain HTML forms, no script.
JSON clients get JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from crmcore.errors import ValidationError
from crmcore.web import crm_of, error_response, render, wants_json
from crmcore.web.limits import RateLimiter
from crmcore_surveys import definition as definitions

if TYPE_CHECKING:
    from crmcore.crm import CRM

RESERVED = {"lang"}


async def _fields(request: Request) -> dict[str, Any]:
    if "application/json" in request.headers.get("content-type", ""):
        data = await request.json()
        if not isinstance(data, dict):
            raise ValidationError({"__all__": "send a JSON object"})
        return data
    form = await request.form()
    values: dict[str, Any] = {}
    for key in form:
        items = [v for v in form.getlist(key) if isinstance(v, str)]
        values[key] = items if len(items) > 1 else (items[0] if items else None)
    return values


def page_context(page: dict[str, Any], language: str | None, values: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None, notice: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything the answer template needs, translated into *language* (with fallback)."""
    survey = page["survey"]
    data = survey.definition
    default = data["default_language"]
    lang = language if language in data["languages"] else (page["contact_language"] or default)

    def tr(text: Any) -> str:
        return definitions.translate(text, lang, default)

    questions = []
    answers = page["answers"] if values is None else values
    for question in data["questions"]:
        kind = question["kind"]
        value = answers.get(question["key"])
        chosen = value if isinstance(value, list) else ([value] if value not in (None, "") else [])
        item = {"key": question["key"], "kind": kind, "text": tr(question["text"]), "help": tr(question.get("help")),
                "required": question["required"], "value": value, "selected": [str(v) for v in chosen]}  # fmt: skip
        if kind in definitions.SCALES:
            low, high = definitions.SCALES[kind]
            item["options"] = [{"value": str(n), "label": str(n)} for n in range(low, high + 1)]
            item["ends"] = {"nps": ("Not at all likely", "Extremely likely"),
                            "csat": ("Very unsatisfied", "Very satisfied"),
                            "ces": ("Very difficult", "Very easy")}[kind]  # fmt: skip
        elif kind in ("single", "multiple"):
            item["options"] = [{"value": c["value"], "label": tr(c["label"])} for c in question["choices"]]
        questions.append(item)
    return {"title": tr(data["title"]), "intro": tr(data.get("intro")), "questions": questions, "lang": lang,
            "errors": errors or {}, "notice": notice, "answered": page["response"] is not None,
            "locked": page["locked"]}  # fmt: skip


def routes(crm: CRM) -> list[BaseRoute]:
    """The plugin's routes, under ``/surveys``."""
    from crmcore_surveys import surveys

    limiter = RateLimiter(limit=30, window=60)

    def limited(request: Request) -> bool:
        client = request.client.host if request.client else "unknown"
        return not limiter.allow(f"surveys:{client}")

    async def answer_page(request: Request) -> Response:
        service = surveys(crm_of(request)).answers
        token = request.path_params["token"]
        if request.method == "GET":
            page = await run_in_threadpool(service.page, token)
            context = page_context(page, request.query_params.get("lang"))
            if wants_json(request):
                return JSONResponse({"title": context["title"], "questions": context["questions"]})
            return render(request, "surveys/answer.html", {**context, "token": token})
        if limited(request):
            return error_response(request, 429, "Too many requests; try again in a minute.")
        values = await _fields(request)
        language = values.pop("lang", None)
        try:
            response = await run_in_threadpool(service.submit, token, values, language=language)
        except ValidationError as exc:
            if wants_json(request):
                raise
            page = await run_in_threadpool(service.page, token)
            context = page_context(page, language, values, exc.errors)
            return render(request, "surveys/answer.html", {**context, "token": token}, 422)
        return await _thanks(request, response.survey_id, language, response.id)

    async def score_link(request: Request) -> Response:
        service = surveys(crm_of(request)).answers
        token = request.path_params["token"]
        if limited(request):
            return error_response(request, 429, "Too many requests; try again in a minute.")
        response = await run_in_threadpool(service.score, token, request.path_params["score"])
        page = await run_in_threadpool(service.page, token)
        if wants_json(request):
            return JSONResponse({"response_id": response.id, "score": response.score}, status_code=201)
        context = page_context(
            page,
            request.query_params.get("lang"),
            notice="Thank you, your score is saved. Anything else you would like to tell us?",
        )
        return render(request, "surveys/answer.html", {**context, "token": token})

    async def _thanks(request: Request, survey_id: int, language: str | None, response_id: int) -> Response:
        if wants_json(request):
            return JSONResponse({"response_id": response_id}, status_code=201)
        from crmcore_surveys.models import Survey

        def load() -> dict[str, Any]:
            with crm_of(request).transaction(readonly=True) as ctx:
                survey = ctx.session.get(Survey, survey_id)
                assert survey is not None
                data = survey.definition
                return {"title": definitions.translate(data["title"], language, data["default_language"]),
                        "thanks": definitions.translate(data.get("thanks"), language, data["default_language"])
                        or "Thank you for your answers.", "lang": language or data["default_language"]}  # fmt: skip

        return render(request, "surveys/thanks.html", await run_in_threadpool(load), 201)

    return [
        Route("/surveys/r/{token}", answer_page, methods=["GET", "POST"]),
        Route("/surveys/r/{token}/{score}", score_link, methods=["GET"]),
    ]
