"""CSV import: mapping, BOM, delimiters, quoted newlines, encodings, per-row errors, re-runs."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from crmcore import hookimpl
from crmcore.errors import ValidationError
from crmcore.models import Contact, LifecycleChange, Organization
from crmcore.registry import CustomFieldSpec
from crmcore.validation import fast_normalize_email, normalize_email

pytestmark = pytest.mark.databases("sqlite", "postgresql", "mariadb")


def write(tmp_path, text, name="people.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def count(crm, model=Contact):
    with crm.transaction(readonly=True) as ctx:
        return ctx.scalar(select(func.count()).select_from(model))


def test_bom_semicolons_quoted_newlines_and_line_numbers(crm, tmp_path):
    crm.custom_fields.define(CustomFieldSpec(entity="contact", name="plan", label="Plan", type="choice",
                                             choices=("free", "pro")))  # fmt: skip
    text = (
        "\ufeffE-Mail;First name;Firma;Notes;plan;Tags\n"
        'ada@example.com;Ada;Analytical Engines;"two\nlines";pro;vip,press\n'
        "not-an-email;Bob;;;free;\n"
        "cyd@example.com;Cyd;Analytical Engines;;gold;\n"
        "dee@example.com;Dee;;;;\n"
    )
    errors = tmp_path / "errors.csv"
    result = crm.contacts.import_csv(write(tmp_path, text), mapping={"First name": "first_name",
                                     "Firma": "organization"}, errors_to=errors)  # fmt: skip
    assert (result.rows, result.created, result.failed) == (4, 2, 2)
    assert result.delimiter == ";" and result.ignored_columns == ["Notes"]
    # the quoted newline makes line 2's record two lines long: Bob is on line 4
    assert [(e.line, e.reason.split(":")[0]) for e in result.errors] == [(4, "email"), (5, "custom.plan")]
    assert "'gold' is not one of free, pro" in result.errors[1].reason
    with errors.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "error", "E-Mail", "First name", "Firma", "Notes", "plan", "Tags"]
    assert [r[0] for r in rows[1:]] == ["4", "5"] and rows[1][2] == "not-an-email"
    ada = crm.contacts.get("ada@example.com")
    assert (ada.first_name, ada.custom, ada.stage, ada.source) == ("Ada", {"plan": "pro"}, "lead", "import")
    assert crm.contacts.tags(ada.id) == ["press", "vip"]
    assert count(crm, Organization) == 1 and count(crm, LifecycleChange) == 2


def test_rerun_creates_nobody_twice_and_updates_what_changed(crm, tmp_path, clock):
    crm.contacts.add(email="Old@Example.com", phone="+442079460958", first_name="Olga")
    text = "email,phone,first_name,city\nold@example.com,,Olga,London\nnew@example.com,,Nina,Paris\n"
    first = crm.contacts.import_csv(write(tmp_path, text))
    assert (first.created, first.updated, first.unchanged) == (1, 1, 0)
    second = crm.contacts.import_csv(write(tmp_path, text))
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    assert count(crm) == 2 and crm.contacts.get("old@example.com").city == "London"
    clock.advance(days=1)
    # matched on the normalized phone when the row has no email
    phone_only = crm.contacts.import_csv(write(tmp_path, "phone,city\n+44 20 7946 0958,Leeds\n", "p.csv"))
    assert (phone_only.created, phone_only.updated) == (0, 1)
    old = crm.contacts.get("old@example.com")
    assert (old.city, old.updated_at) == ("Leeds", clock.now()) and count(crm) == 2


def test_duplicates_inside_one_file_are_reported(crm, tmp_path):
    text = (
        "email,phone\nada@example.com,\nADA@example.com,\n"
        "bob@example.com,+1 212 555 0100\ncyd@example.com,(212) 555-0100\n"
    )
    result = crm.contacts.import_csv(write(tmp_path, text))
    assert result.created == 2
    assert [(e.line, e.reason) for e in result.errors] == [
        (3, "duplicate of line 2 (same email)"),
        (5, "duplicate of line 4 (same phone)"),
    ]


def test_missing_and_extra_columns_are_row_errors(crm, tmp_path):
    text = "email,first_name\nada@example.com\nbob@example.com,Bob,extra\ncyd@example.com,Cyd\n"
    result = crm.contacts.import_csv(write(tmp_path, text))
    assert result.created == 1
    assert [e.reason for e in result.errors] == [
        "has 1 values, the header has 2 columns",
        "has 3 values, the header has 2 columns",
    ]


def test_latin1_file_is_refused_before_anything_is_written(crm, tmp_path):
    text = "email,last_name\n" + "".join(f"p{i}@example.com,Name{i}\n" for i in range(10)) + "zoe@example.com,Müller\n"
    path = write(tmp_path, text, encoding="latin-1")
    with pytest.raises(ValidationError) as error:
        crm.contacts.import_csv(path, batch_size=3)
    assert "line 12 is not UTF-8" in error.value.errors["file"] and "--encoding cp1252" in error.value.errors["file"]
    assert count(crm) == 0
    result = crm.contacts.import_csv(path, encoding="cp1252")
    assert result.created == 11 and crm.contacts.get("zoe@example.com").last_name == "Müller"


@pytest.mark.parametrize(
    ("mapping", "key", "fragment"),
    [
        ({"Mail": "emial"}, "map.Mail", "fields: email, phone"),
        ({"Nope": "email"}, "map.Nope", "columns: Mail, Name"),
        ({"Name": "email", "Mail": "email"}, "map.Mail", "already mapped"),
        ({"Mail": ""}, "map", "map a column to email or phone"),
    ],
)
def test_bad_mappings_are_refused_with_what_is_valid(crm, tmp_path, mapping, key, fragment):
    path = write(tmp_path, "Mail,Name\nada@example.com,Ada\n")
    with pytest.raises(ValidationError) as error:
        crm.contacts.import_csv(path, mapping=mapping)
    assert fragment in error.value.errors[key]
    assert count(crm) == 0


def test_dry_run_writes_nothing(crm, tmp_path):
    path = write(tmp_path, "email,company\nada@example.com,Acme\nbad,Acme\n")
    result = crm.contacts.import_csv(path, dry_run=True)
    assert (result.created, result.failed, result.dry_run) == (1, 1, True)
    assert count(crm) == 0 and count(crm, Organization) == 0


class FailOn:
    """Raises while the contact with this email is being captured (a crash mid-batch)."""

    def __init__(self, email):
        self.email = email

    @hookimpl
    def crm_lead_captured(self, event, ctx):
        if ctx.session.get(Contact, event.contact_id).email_normalized == self.email:
            raise RuntimeError("disk on fire")


def test_crash_mid_batch_keeps_earlier_batches_and_rerun_completes(crm_factory, tmp_path):
    failing = FailOn("p7@example.com")
    crm = crm_factory(plugins=[failing])
    path = write(tmp_path, "email\n" + "".join(f"p{i}@example.com\n" for i in range(10)))
    with pytest.raises(Exception, match="disk on fire"):
        crm.contacts.import_csv(path, batch_size=3)
    assert count(crm) == 6  # two whole batches; the third rolled back entirely
    failing.email = None
    result = crm.contacts.import_csv(path, batch_size=3)
    assert (result.created, result.unchanged) == (4, 6) and count(crm) == 10


class Recorder:
    """Keeps every lead-captured event."""

    def __init__(self):
        self.events = []

    @hookimpl
    def crm_lead_captured(self, event, ctx):
        self.events.append(event)


def test_each_new_contact_gets_its_own_tags_lifecycle_row_and_event(crm_factory, tmp_path, monkeypatch, clock):
    monkeypatch.setattr("crmcore.services.imports._IN_CHUNK", 2)  # existing contacts are looked up in many IN lists
    recorder = Recorder()
    crm = crm_factory(plugins=[recorder])
    crm.contacts.add(email="p2@example.com")
    crm.contacts.add(phone="+1 212 555 0103")
    rows = [
        f"p{n}@example.com,,{stage},{source},t{n}" if n % 3 else f",+1 212 555 01{n:02d},{stage},{source},t{n}"
        for n, stage, source in ((n, "prospect" if n % 4 == 1 else "", "fair" if n % 2 else "") for n in range(10))
    ]
    path = write(tmp_path, "email,phone,stage,source,tags\n" + "\n".join(rows) + "\n")
    result = crm.contacts.import_csv(path, batch_size=4)
    assert (result.created, result.updated, result.unchanged, result.failed) == (8, 1, 1, 0)
    with crm.transaction(readonly=True) as ctx:
        imported = ctx.session.scalars(select(LifecycleChange).where(LifecycleChange.reason == "imported")).all()
        assert {(m.from_stage, m.occurred_at, m.actor_id) for m in imported} == {(None, clock.now(), None)}
        moves = {m.contact_id: m.to_stage for m in imported}
        assert len(moves) == len(imported)
    with crm.transaction(readonly=True) as ctx:
        by_phone = dict(ctx.session.execute(select(Contact.phone_normalized, Contact.id)).all())
    for n in range(10):
        contact = crm.contacts.get(f"p{n}@example.com" if n % 3 else by_phone[f"+121255501{n:02d}"])
        assert crm.contacts.tags(contact.id) == [f"t{n}"]
        if n in (2, 3):  # existed before: matched, not captured
            assert contact.id not in moves
            continue
        stage = "prospect" if n % 4 == 1 else "lead"
        assert (contact.stage, moves[contact.id]) == (stage, stage)
        assert contact.source == ("fair" if n % 2 else "import")
    captured = {event.contact_id: event.source for event in recorder.events}
    assert len(recorder.events) == 8 and set(captured) == set(moves)
    assert all(crm.contacts.get(contact_id).source == source for contact_id, source in captured.items())


def test_batch_constants_are_stored_as_a_capture_stores_them(crm, tmp_path, clock):
    """The values shared by a batch (written into the statement on SQLite) equal those a capture binds."""
    crm.leads.capture(email="captured@example.com")
    source = "O'Brien's fair? 100% -- ;"
    result = crm.contacts.import_csv(write(tmp_path, "email\nimported@example.com\n"), source=source)
    assert result.created == 1
    columns = "stage, custom, score, do_not_contact, do_not_track, created_at, updated_at, stage_changed_at, " \
              "last_activity_at"  # fmt: skip
    with crm.transaction(readonly=True) as ctx:
        stored = {row[0]: row[1:] for row in ctx.session.execute(text(
            f"SELECT email_normalized, source, {columns} FROM contact ORDER BY id"))}  # fmt: skip
    assert stored["imported@example.com"][0] == source
    assert stored["imported@example.com"][1:] == stored["captured@example.com"][1:]
    assert crm.contacts.get("imported@example.com").created_at == clock.now()


class Veto:
    @hookimpl
    def crm_lead_before_capture(self, contact, ctx):
        if contact.email_normalized.endswith("@gmail.com"):
            raise ValidationError({"email": "no free-mail leads"})


def test_plugin_veto_is_a_row_error(crm_factory, tmp_path):
    crm = crm_factory(plugins=[Veto()])
    result = crm.contacts.import_csv(write(tmp_path, "email\nada@example.com\nbob@gmail.com\n"))
    assert result.created == 1 and "no free-mail leads" in result.errors[0].reason


def test_cli_import_and_export_round_trip(crm, cli, tmp_path, crm_factory):
    path = write(tmp_path, "E-Mail,Vorname\nada@example.com,Ada\nbad,Bob\n")
    errors = tmp_path / "refused.csv"
    done = cli("contact", "import", str(path), "--map", "E-Mail=email", "--map", "Vorname=first_name",
               "--errors", str(errors))  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "2 rows: 1 created, 0 updated, 0 unchanged, 1 refused" in done.output
    assert "line 3: email:" in done.output and "bad" in errors.read_text()
    bad = cli("contact", "import", str(path), "--map", "E-Mail=emial")
    assert bad.exit_code == 1 and "unknown field 'emial'" in bad.output
    exported = cli("contact", "export", "--format", "csv").output
    assert exported.splitlines()[0].startswith("id,email,phone,first_name")
    again = cli("contact", "import", str(write(tmp_path, exported, "export.csv")), "--format", "json")
    assert json.loads(again.output)["unchanged"] == 1
    as_json = json.loads(cli("contact", "export", "--format", "json").output)
    assert [c["email"] for c in as_json] == ["ada@example.com"]


@given(
    local=st.from_regex(r"[A-Za-z0-9_%+-]{1,20}(\.[A-Za-z0-9_%+-]{1,10}){0,2}", fullmatch=True),
    domain=st.from_regex(r"([A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,8}", fullmatch=True),
)
@settings(max_examples=200, deadline=None)
def test_fast_email_path_agrees_with_email_validator(local, domain):
    address = f"{local}@{domain}"
    try:
        expected = normalize_email(address)
    except ValidationError:
        with pytest.raises(ValidationError):
            fast_normalize_email(address)
        return
    assert fast_normalize_email(address) == expected


cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["ada@example.com", "bob@example.com", "x@y", "+1 212 555 0100", "", '"', "a;b", "\n"]),
)


@pytest.mark.databases("sqlite")
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=5), max_size=12))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_rows_never_crash_and_never_write_partial_rows(crm, tmp_path, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "phone", "first_name", "country"])
    writer.writerows(rows)
    path = write(tmp_path, buffer.getvalue(), "random.csv")
    before = count(crm)
    result = crm.contacts.import_csv(path, batch_size=4)
    after = count(crm)
    assert after - before == result.created
    assert result.created + result.updated + result.unchanged + result.failed == result.rows
    with crm.transaction(readonly=True) as ctx:
        incomplete = ctx.scalar(
            select(func.count()).select_from(Contact).where(
                Contact.email_normalized.is_(None), Contact.phone_normalized.is_(None), Contact.erased_at.is_(None)
            )
        )  # fmt: skip
        orphans = ctx.scalar(select(func.count()).select_from(Contact).where(
            ~Contact.id.in_(select(LifecycleChange.contact_id))))  # fmt: skip
    assert incomplete == 0 and orphans == 0


@pytest.mark.databases("sqlite")
def test_progress_reports_every_byte_read(crm, tmp_path):
    path = write(tmp_path, "email\n" + "".join(f"p{i}@example.com\n" for i in range(3000)))
    seen = []
    crm.contacts.import_csv(path, batch_size=500, progress=seen.append)
    assert sum(seen) == path.stat().st_size and len(seen) > 1
