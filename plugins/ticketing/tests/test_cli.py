"""The command line: crm ticket, crm sla, crm kb, crm contract (with --format json)."""

from __future__ import annotations

import json


def run(cli, *args, ok=True):
    result = cli(*args)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_calendar_policy_and_a_ticket_from_the_command_line(cli, agent, clock):
    run(
        cli,
        "sla",
        "calendar",
        "add",
        "Berlin office",
        "--tz",
        "Europe/Berlin",
        "--hours",
        "mon-fri 09:00-12:00,13:00-17:00",
        "--holidays",
        "DE",
        "--region",
        "BE",
        "--closed",
        "2026-12-24",
    )
    run(
        cli,
        "sla",
        "policy",
        "add",
        "Standard",
        "--calendar",
        "Berlin office",
        "--target",
        "*:first_reply=4h",
        "--target",
        "*:resolution=24h",
        "--warn",
        "30m",
        "--warn",
        "80%",
        "--escalate",
        "first_reply:0m:notify:boss@example.com",
    )
    policies = json.loads(run(cli, "sla", "policy", "list", "--format", "json").output)
    assert [(p["name"], p["applies_to"], p["warnings"]) for p in policies] == [
        ("Standard", "every ticket", ["30m", "80%"])
    ]
    opened = json.loads(
        run(
            cli,
            "ticket",
            "open",
            "--requester",
            "ada@example.com",
            "--subject",
            "Printer on fire",
            "-m",
            "Help!",
            "--channel",
            "phone",
            "--as",
            agent.email,
            "--format",
            "json",
        ).output
    )
    number = opened["number"]
    assert opened["channel"] == "phone" and opened["status"] == "open"
    run(cli, "ticket", "reply", number, "-m", "Unplug it", "--status", "pending", "--as", agent.email)
    run(cli, "ticket", "note", number, "-m", "Known issue", "--as", agent.email)
    run(cli, "ticket", "assign", number, "--to", agent.email)
    shown = json.loads(run(cli, "ticket", "show", number, "--format", "json").output)
    assert [(m["author"], m["public"]) for m in shown["messages"]] == [
        ("agent", True),
        ("agent", True),
        ("agent", False),
    ]
    assert shown["status"] == "pending" and shown["assignee"] == "agent@example.com"
    assert [(h["old"], h["new"]) for h in shown["history"] if h["field"] == "status"] == [
        ("new", "open"),
        ("open", "pending"),
    ]
    sla = json.loads(run(cli, "ticket", "sla", number, "--format", "json").output)
    assert {r["metric"]: r["state"] for r in sla} == {"first_reply": "fulfilled", "resolution": "paused"}
    explained = run(cli, "ticket", "sla", number, "--explain").output
    assert "schedule 'Berlin office': Europe/Berlin: mon-fri 09:00-12:00,13:00-17:00; holidays DE-BE" in explained
    run(cli, "ticket", "status", number, "solved")
    run(cli, "ticket", "close", number)
    listed = json.loads(run(cli, "ticket", "list", "--status", "closed", "--format", "json").output)
    assert [t["number"] for t in listed] == [number]
    due = run(
        cli, "sla", "calendar", "due", "Berlin office", "--from", "2026-12-23T16:00:00+01:00", "--add", "2h"
    ).output
    assert due.startswith("2026-12-28T10:00:00+01:00")


def test_ingest_kb_and_contracts_from_the_command_line(cli, support, mail_data):
    ingested = json.loads(
        run(
            cli,
            "ticket",
            "ingest",
            str(mail_data / "outlook_quoted_printable.eml"),
            str(mail_data / "autoreply_auto_submitted.eml"),
            "--format",
            "json",
        ).output
    )
    assert [r["action"] for r in ingested] == ["created", "ignored"]
    number = ingested[0]["number"]
    run(cli, "kb", "add", "--title", "Change the VAT rate", "--body", "Edit the product's tax class.", "--publish")
    hits = json.loads(run(cli, "kb", "search", "VAT rate", "--format", "json").output)
    assert [h["slug"] for h in hits] == ["change-the-vat-rate"]
    assert json.loads(run(cli, "kb", "suggest", number, "--format", "json").output)[0]["slug"] == "change-the-vat-rate"
    run(cli, "kb", "link", number, "change-the-vat-rate")
    assert json.loads(run(cli, "kb", "show", "change-the-vat-rate", "--format", "json").output)["tickets"] == [
        support.tickets.get(number).id]  # fmt: skip
    run(
        cli,
        "contract",
        "add",
        "--customer",
        "claire@librairie-dubois.fr",
        "--tier",
        "gold",
        "--from",
        "2026-01-01",
        "--until",
        "2026-12-31",
    )
    contracts = json.loads(run(cli, "contract", "list", "--format", "json").output)
    assert [(c["tier"], c["ends_on"]) for c in contracts] == [("gold", "2026-12-31")]


def test_bad_input_is_one_line_on_stderr_and_exit_1(cli, mail_data):
    bad_zone = run(cli, "sla", "calendar", "add", "X", "--tz", "Nowhere/City", "--hours", "mon 09:00-17:00", ok=False)
    assert bad_zone.exit_code == 1 and "not a time zone" in bad_zone.output
    no_hours = run(cli, "sla", "calendar", "add", "X", "--tz", "UTC", "--hours", "", ok=False)
    assert "at least one open interval" in no_hours.output
    malformed = run(cli, "ticket", "ingest", str(mail_data / "malformed_no_sender.eml"), ok=False)
    assert "no sender address" in malformed.output
    unknown = run(cli, "ticket", "show", "TK-0000-0000", ok=False)
    assert "no ticket" in unknown.output
