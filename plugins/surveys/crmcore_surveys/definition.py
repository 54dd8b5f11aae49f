"""Survey definitions: parsed from YAML or JSON, validated, with every error's location.

A definition is a mapping::

    key: support-csat
    title: {en: How did we do?, de: Wie war unser Service?}
    default_language: en
    questions:
      - {key: score, kind: csat, text: {en: How satisfied are you?}, required: true}
      - {key: why, kind: text, text: What could we do better?}
    triggers:
      - {hook: crm_ticket_solved, delay: 2h, sample: 0.5}

Errors name where they are (``questions[1].kind``) and, for YAML files, the line.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crmcore.errors import ValidationError

#: The score range of each scored kind.
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
KINDS = ("nps", "csat", "ces", "single", "multiple", "text")
RESUBMIT = ("update", "refuse")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_TEXT = 2000
TOP_LEVEL = {"key", "title", "intro", "thanks", "default_language", "languages", "anonymous", "questions",
             "triggers", "resubmit", "edit_window", "link_days", "rules", "email_subject"}  # fmt: skip
QUESTION_KEYS = {"key", "kind", "text", "help", "required", "choices", "contact_field", "other"}
TRIGGER_KEYS = {"hook", "delay", "sample", "when"}
RULE_KEYS = {"detractor", "promoter_referral"}

#: What the score of each kind says: detractor / passive / promoter boundaries.
#: NPS 0-6 / 7-8 / 9-10; CSAT 1-2 / 3 / 4-5; CES (1 very hard … 7 very easy) 1-3 / 4 / 5-7.
CATEGORY_BOUNDS: dict[str, tuple[int, int]] = {"nps": (6, 9), "csat": (2, 4), "ces": (3, 5)}


def category(kind: str | None, score: int | None) -> str | None:
    """``detractor``, ``passive`` or ``promoter`` for a score of a scored kind, else None."""
    if kind not in CATEGORY_BOUNDS or score is None:
        return None
    low, high = CATEGORY_BOUNDS[kind]
    if score <= low:
        return "detractor"
    return "promoter" if score >= high else "passive"


def parse_duration(value: Any, where: str) -> int:
    """Seconds of ``90``, ``30m``, ``2h``, ``7d``, ``1w``."""
    match = DURATION.match(str(value)) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if match is None:
        raise ValidationError({where: f"{value!r} is not a duration (90, 30m, 2h, 7d, 1w)"})
    return int(match.group(1)) * UNITS[match.group(2)]


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a definition from a ``.yaml``/``.yml`` or ``.json`` file and validate it."""
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError({"file": f"cannot read {file}: {exc}"}) from None
    lines: dict[str, int] = {}
    if file.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError({"file": f"{file.name} line {exc.lineno}: {exc.msg}"}) from None
    else:
        data, lines = _load_yaml(raw, file.name)
    try:
        return validate(data)
    except ValidationError as exc:
        located = {}
        for where, message in exc.errors.items():
            line = _line_of(lines, where)
            located[where] = f"{message} ({file.name} line {line})" if line else message
        raise ValidationError(located) from None


def _load_yaml(raw: str, name: str) -> tuple[Any, dict[str, int]]:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError({"file": f"{name}{where}: {problem}"}) from None
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, "", lines)
    return data, lines


def _walk(node: Any, path: str, lines: dict[str, int]) -> None:
    import yaml  # type: ignore[import-untyped,unused-ignore]

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = f"{path}.{key_node.value}" if path else str(key_node.value)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, f"{path}[{index}]", lines)


def _line_of(lines: dict[str, int], where: str) -> int | None:
    while where:
        if where in lines:
            return lines[where]
        where = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", where)
    return None


def _text(value: Any, where: str, errors: dict[str, str], *, required: bool) -> dict[str, str] | None:
    """A translatable text: a string (the default language's) or ``{language: text}``."""
    if value is None or value == "" or value == {}:
        if required:
            errors[where] = "is required"
        return None
    if isinstance(value, str):
        value = {"": value}
    if not isinstance(value, Mapping):
        errors[where] = "give a text or a mapping of language to text"
        return None
    result: dict[str, str] = {}
    for language, text in value.items():
        language = str(language)
        if language and not LANGUAGE.match(language):
            errors[f"{where}.{language}"] = "is not a language code (en, de, pt-BR)"
        elif not isinstance(text, str) or not text.strip():
            errors[f"{where}.{language or 'text'}"] = "give a non-empty text"
        elif len(text) > MAX_TEXT:
            errors[f"{where}.{language or 'text'}"] = f"is longer than {MAX_TEXT} characters"
        else:
            result[language] = text.strip()
    return result


def _unknown(data: Mapping[str, Any], allowed: set[str], where: str, errors: dict[str, str]) -> None:
    for name in data:
        if name not in allowed:
            errors[f"{where}{name}"] = f"unknown field; known: {', '.join(sorted(allowed))}"


def validate(data: Any) -> dict[str, Any]:
    """Check a definition and return it normalised; a ValidationError lists every problem."""
    if not isinstance(data, Mapping):
        raise ValidationError({"definition": "must be a mapping (key, title, questions, ...)"})
    errors: dict[str, str] = {}
    _unknown(data, TOP_LEVEL, "", errors)
    key = data.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        errors["key"] = "give a key of lower-case letters, digits, '-' and '_' (support-csat)"
    default_language = data.get("default_language", "en")
    if not isinstance(default_language, str) or not LANGUAGE.match(default_language):
        errors["default_language"] = "is not a language code (en, de, pt-BR)"
        default_language = "en"
    title = _text(data.get("title"), "title", errors, required=True)
    out: dict[str, Any] = {
        "key": key,
        "title": _fill(title, default_language),
        "intro": _fill(_text(data.get("intro"), "intro", errors, required=False), default_language),
        "thanks": _fill(_text(data.get("thanks"), "thanks", errors, required=False), default_language),
        "email_subject": _fill(
            _text(data.get("email_subject"), "email_subject", errors, required=False), default_language
        ),
        "default_language": default_language,
        "anonymous": _flag(data.get("anonymous", False), "anonymous", errors),
    }
    resubmit = data.get("resubmit", "update")
    if resubmit not in RESUBMIT:
        errors["resubmit"] = f"{resubmit!r} is not one of {', '.join(RESUBMIT)}"
    out["resubmit"] = resubmit
    out["edit_window"] = _duration(data.get("edit_window", "7d"), "edit_window", errors)
    link_days = data.get("link_days", 30)
    if not isinstance(link_days, int) or isinstance(link_days, bool) or not 1 <= link_days <= 366:
        errors["link_days"] = "give a number of days from 1 to 366"
    out["link_days"] = link_days
    out["questions"] = _questions(data.get("questions"), default_language, errors)
    out["triggers"] = _triggers(data.get("triggers", []), errors)
    out["rules"] = _rules(data.get("rules", {}), errors)
    languages = {lang for q in out["questions"] for lang in q["text"]} | set(out["title"] or {})
    out["languages"] = sorted(languages)
    if errors:
        raise ValidationError(errors)
    return out


def _fill(text: dict[str, str] | None, default_language: str) -> dict[str, str] | None:
    """Store a plain string under the default language."""
    if text is None:
        return None
    return {(language or default_language): value for language, value in text.items()}


def _flag(value: Any, where: str, errors: dict[str, str]) -> bool:
    if not isinstance(value, bool):
        errors[where] = "give true or false"
        return False
    return value


def _duration(value: Any, where: str, errors: dict[str, str]) -> int:
    try:
        return parse_duration(value, where)
    except ValidationError as exc:
        errors.update(exc.errors)
        return 0


def _questions(value: Any, default_language: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        errors["questions"] = "give a list of at least one question"
        return []
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"questions[{index}]"
        if not isinstance(item, Mapping):
            errors[where] = "must be a mapping (key, kind, text, ...)"
            continue
        _unknown(item, QUESTION_KEYS, f"{where}.", errors)
        key = item.get("key", f"q{index + 1}")
        if not isinstance(key, str) or not KEY.match(key):
            errors[f"{where}.key"] = "give a key of lower-case letters, digits, '-' and '_'"
        elif key in seen:
            errors[f"{where}.key"] = f"{key!r} is used twice"
        seen.add(str(key))
        kind = item.get("kind")
        if kind not in KINDS:
            errors[f"{where}.kind"] = f"unknown question kind {kind!r}; kinds: {', '.join(KINDS)}"
        question: dict[str, Any] = {
            "key": key, "kind": kind,
            "text": _fill(_text(item.get("text"), f"{where}.text", errors, required=True), default_language) or {},
            "help": _fill(_text(item.get("help"), f"{where}.help", errors, required=False), default_language),
            "required": _flag(item.get("required", False), f"{where}.required", errors),
        }  # fmt: skip
        field = item.get("contact_field")
        if field is not None and (not isinstance(field, str) or not KEY.match(field)):
            errors[f"{where}.contact_field"] = "give the name of a contact custom field"
        question["contact_field"] = field
        if kind in ("single", "multiple"):
            question["choices"] = _choices(item.get("choices"), f"{where}.choices", default_language, errors)
        elif "choices" in item:
            errors[f"{where}.choices"] = f"only single and multiple choice questions have choices, not {kind!r}"
        result.append(question)
    return result


def _choices(value: Any, where: str, default_language: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) < 2:
        errors[where] = "give a list of at least two choices"
        return []
    result: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        spot = f"{where}[{index}]"
        if isinstance(item, bool):
            errors[spot] = "is true/false: quote yes, no, on and off in YAML ('Yes')"
            continue
        if isinstance(item, int | float):
            item = str(item)
        if isinstance(item, str):
            item = {"value": re.sub(r"[^a-z0-9_-]+", "-", item.strip().lower()).strip("-"), "label": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str) or not item["value"]:
            errors[spot] = "give a text or {value, label}"
            continue
        if len(item["value"]) > 120 or item["value"] in {c["value"] for c in result}:
            errors[f"{spot}.value"] = "must be unique and at most 120 characters"
        label = _fill(_text(item.get("label", item["value"]), f"{spot}.label", errors, required=True),
                      default_language)  # fmt: skip
        result.append({"value": item["value"], "label": label or {}})
    return result


def _triggers(value: Any, errors: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        errors["triggers"] = "give a list of triggers"
        return []
    result = []
    for index, item in enumerate(value):
        where = f"triggers[{index}]"
        if not isinstance(item, Mapping):
            errors[where] = "must be a mapping (hook, delay, sample, when)"
            continue
        _unknown(item, TRIGGER_KEYS, f"{where}.", errors)
        hook = item.get("hook")
        if not isinstance(hook, str) or not re.match(r"^crm_[a-z0-9_]+$", hook):
            errors[f"{where}.hook"] = "give a hook name (crm_ticket_solved)"
        sample = item.get("sample", 1)
        if isinstance(sample, str) and sample.strip().endswith("%"):
            with contextlib.suppress(ValueError):
                sample = float(sample.strip()[:-1]) / 100
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 < sample <= 1:
            errors[f"{where}.sample"] = "give a share from 0 (excluded) to 1, or a percentage (25%)"
            sample = 1
        when = item.get("when", {})
        if not isinstance(when, Mapping):
            errors[f"{where}.when"] = "give a mapping of event attribute to value ({won: true})"
            when = {}
        result.append({"hook": hook, "delay": _duration(item.get("delay", 0), f"{where}.delay", errors),
                       "sample": float(sample), "when": dict(when)})  # fmt: skip
    return result


def _rules(value: Any, errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        errors["rules"] = "give a mapping (detractor, promoter_referral)"
        return {}
    _unknown(value, RULE_KEYS, "rules.", errors)
    rules: dict[str, Any] = {}
    if "detractor" in value:
        if value["detractor"] not in ("auto", "ticket", "alert", "none"):
            errors["rules.detractor"] = "give auto, ticket, alert or none"
        rules["detractor"] = value["detractor"]
    if "promoter_referral" in value:
        rules["promoter_referral"] = _flag(value["promoter_referral"], "rules.promoter_referral", errors)
    return rules


def headline(definition: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first NPS, CSAT or CES question: the survey's headline score."""
    for question in definition["questions"]:
        if question["kind"] in SCALES:
            return dict(question)
    return None


def translate(text: Mapping[str, str] | None, language: str | None, default_language: str) -> str:
    """The text in *language*, else its base language (``de`` for ``de-CH``), else the default."""
    if not text:
        return ""
    for candidate in (language, (language or "").split("-")[0], default_language):
        if candidate and candidate in text:
            return text[candidate]
    return next(iter(text.values()))
