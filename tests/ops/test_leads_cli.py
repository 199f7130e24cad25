"""`leadline leads …` and `leadline dnc …` (ops/leads_cli.py) end to end: real CSV files
into a real SQLite file and a real PostgreSQL schema, and back out."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ops.leads_cli import register as register_leads
from ops.store_cli import register as register_store
from sms.leads_csv import leads_to_csv_bytes
from store.database import open_database
from store.models import Lead
from tests.sms.test_leads_csv import normalize_ok, stored_leads
from tests.store.conftest import backend_url

LEADLINE = str(Path(sys.executable).with_name("leadline"))

REALISTIC = (
    "\ufeffPhone Number,First Name,Last Name,E-mail,State,Notes,Lead Source\r\n"
    '(415) 555-2671,María José,"García, Jr.",Maria@Example.COM,california,'
    '"likes ""quotes"", commas,\nand two lines",\r\n'
    "\r\n"
    "+1 212-555-0100,  Zoë ,Nuñez,not-an-email,Narnia,,expo\r\n"
    "garbage,Nobody,Here,,,,\r\n"
    "312-555-0199,Ángel,O'Brien,angel@example.org,IL,vip,\r\n"
)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leadline")
    sub = parser.add_subparsers(dest="command", required=True)
    register_store(sub)
    register_leads(sub)
    args = parser.parse_args(list(argv))
    return int(args.func(args))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    url_cm = backend_url(request.param, tmp_path)
    loop = asyncio.new_event_loop()
    try:
        url = loop.run_until_complete(url_cm.__aenter__())
        assert run("db", "migrate", "--database-url", url) == 0
        yield url
    finally:
        loop.run_until_complete(url_cm.__aexit__(None, None, None))
        loop.close()


def fresh_url(tmp_path: Path, name: str) -> str:
    """A new, migrated SQLite file."""
    url = f"sqlite:///{tmp_path}/{name}.db"

    async def create() -> None:
        await (await open_database(url)).close()

    asyncio.run(create())
    return url


def out_json(capsys: pytest.CaptureFixture[str]) -> object:
    captured = capsys.readouterr()
    return json.loads(captured.out)


async def all_leads(url: str) -> list[Lead]:
    db = await open_database(url, migrate=False)
    try:
        return [lead async for lead in db.iter_leads()]
    finally:
        await db.close()


def comparable(lead: Lead) -> tuple[object, ...]:
    return (lead.phone, lead.first_name, lead.last_name, lead.email, lead.state,
            lead.source, lead.attributes)


def test_import_reimport_show_list_export_round_trip(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "leads.csv"
    src.write_text(REALISTIC, encoding="utf-8")
    capsys.readouterr()

    assert run("leads", "import", str(src), "--source", "fair", "--json",
               "--database-url", db_url) == 0
    report = out_json(capsys)
    assert isinstance(report, dict)
    assert {k: report[k] for k in ("rows", "created", "updated", "unchanged", "skipped")} == {
        "rows": 4, "created": 3, "updated": 0, "unchanged": 0, "skipped": 1}
    assert [(w["row"], w["field"]) for w in report["warnings"]] == [(2, "email"), (2, "state")]
    assert [(e["row"], e["field"]) for e in report["errors"]] == [(3, "phone")]
    assert "garbage" in report["errors"][0]["reason"]
    assert set(report) == {"rows", "created", "updated", "unchanged", "skipped", "warnings",
                           "errors"}

    assert run("leads", "import", str(src), "--source", "fair", "--json",
               "--database-url", db_url) == 0
    again = out_json(capsys)
    assert isinstance(again, dict)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)

    assert run("leads", "show", "415.555.2671", "--json", "--database-url", db_url) == 0
    shown = out_json(capsys)
    assert isinstance(shown, dict)
    assert shown["phone"] == "+14155552671"
    assert (shown["first_name"], shown["last_name"]) == ("María José", "García, Jr.")
    assert (shown["email"], shown["state"], shown["source"]) == (
        "Maria@example.com", "CA", "fair")
    assert shown["attributes"] == {"Notes": 'likes "quotes", commas,\nand two lines'}
    assert (shown["status"], shown["opted_out"], shown["dnc"], shown["human_takeover"]) == (
        "new", False, False, False)
    assert shown["messages"] == []
    assert set(shown) == {"phone", "first_name", "last_name", "email", "state", "status",
                          "opted_out", "dnc", "source", "attributes", "human_takeover",
                          "created_at", "updated_at", "messages"}
    assert run("leads", "show", "+12125550100", "--json", "--database-url", db_url) == 0
    assert out_json(capsys)["source"] == "expo"  # type: ignore[index]

    assert run("leads", "list", "--json", "--database-url", db_url) == 0
    listed = out_json(capsys)
    assert isinstance(listed, list)
    # ordered by id; the store numbers one batch's new leads in phone order
    assert [x["phone"] for x in listed] == ["+12125550100", "+13125550199", "+14155552671"]
    assert "messages" not in listed[0]
    assert run("leads", "list", "--limit", "1", "--json", "--database-url", db_url) == 0
    assert len(out_json(capsys)) == 1  # type: ignore[arg-type]
    assert run("leads", "list", "--status", "booked", "--json", "--database-url", db_url) == 0
    assert out_json(capsys) == []

    exported = tmp_path / "out.csv"
    assert run("leads", "export", str(exported), "--json", "--database-url", db_url) == 0
    assert out_json(capsys) == {"exported": 3, "file": str(exported)}
    header = exported.read_bytes().decode("utf-8").split("\r\n", 1)[0]
    assert header == "phone,first_name,last_name,email,state,status,source,Notes"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == []

    empty = fresh_url(tmp_path, "empty")
    assert run("leads", "import", str(exported), "--json", "--database-url", empty) == 0
    assert out_json(capsys)["created"] == 3  # type: ignore[index]
    before, after = asyncio.run(all_leads(db_url)), asyncio.run(all_leads(empty))
    assert [comparable(x) for x in after] == [comparable(x) for x in before]


def test_human_output(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "leads.csv"
    src.write_text(REALISTIC, encoding="utf-8")
    capsys.readouterr()
    assert run("leads", "import", str(src), "--database-url", db_url) == 0
    out = capsys.readouterr()
    assert "4 rows — 3 created, 0 updated, 0 unchanged, 1 skipped, 2 warnings" in out.out
    assert "skipped: row 3 phone:" in out.out and out.err == ""
    assert run("leads", "show", "+13125550199", "--database-url", db_url) == 0
    text = capsys.readouterr().out
    assert "Ángel O'Brien" in text and "vip" in text and "(no messages)" in text


def test_show_not_found_and_invalid(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("leads", "show", "+14155552671", "--json", "--database-url", db_url) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "no lead with phone +14155552671"}
    assert run("leads", "show", "not-a-number", "--json", "--database-url", db_url) == 2
    captured = capsys.readouterr()
    assert "not a phone number" in json.loads(captured.out)["error"]
    assert "not a phone number" in captured.err


def test_list_bad_status_and_limit(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("leads", "list", "--status", "hot", "--json", "--database-url", db_url) == 2
    assert "--status must be one of new, contacted" in capsys.readouterr().err
    assert run("leads", "list", "--limit", "0", "--database-url", db_url) == 2


def test_show_includes_messages(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> None:
        from store.models import LeadInput

        db = await open_database(db_url, migrate=False)
        try:
            await db.upsert_leads([LeadInput(phone="+14155552671", first_name="Ana")])
            await db.record_inbound_message(
                phone="+14155552671", channel="sms", body="¿Sigue disponible?",
                from_addr="+14155552671", to_addr="+15005550006", provider_sid="SM1",
                segments=1)
        finally:
            await db.close()

    asyncio.run(seed())
    assert run("leads", "show", "+14155552671", "--json", "--database-url", db_url) == 0
    shown = out_json(capsys)
    assert isinstance(shown, dict)
    assert shown["status"] == "replied"
    [message] = shown["messages"]
    assert set(message) == {"direction", "channel", "body", "status", "intent", "confidence",
                            "created_at"}
    assert (message["direction"], message["body"]) == ("inbound", "¿Sigue disponible?")


def test_bad_files_exit_2_and_import_nothing(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["Phone,First Name"] + [f"415555{2600 + i},Name{i}" for i in range(1500)]
    body = ("\n".join(lines) + "\n").encode()
    mis_encoded = tmp_path / "latin1.csv"
    mis_encoded.write_bytes(body.replace(b"Name1400", b"Jos\xe9"))  # data row 1401
    capsys.readouterr()
    assert run("leads", "import", str(mis_encoded), "--json", "--database-url", db_url) == 2
    captured = capsys.readouterr()
    assert "row 1401: not UTF-8 (byte 0xe9 at line 1402" in captured.err
    assert "nothing was imported" in captured.err
    assert "row 1401" in json.loads(captured.out)["error"]
    assert asyncio.run(all_leads(db_url)) == []

    quoted = tmp_path / "quote.csv"
    quoted.write_text('Phone,Name\n4155552671,Ana\n2125550100,"Bo\n3125550199,Cy\n')
    assert run("leads", "import", str(quoted), "--database-url", db_url) == 2
    assert "row 2 (from line 3): a quote opened here is never closed" in capsys.readouterr().err

    assert run("leads", "import", str(tmp_path / "missing.csv"), "--database-url", db_url) == 2
    assert "cannot read" in capsys.readouterr().err
    assert run("leads", "import", str(tmp_path), "--database-url", db_url) == 2
    assert asyncio.run(all_leads(db_url)) == []


def test_batches_and_duplicates_across_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_url(tmp_path, "batches")
    lines = ["phone,first_name,email"]
    for i in range(2500):
        lines.append(f"+1415555{2000 + i},N{i},n{i}@example.com")
    lines.append("+14155552000,Renamed,")  # row 2501 repeats row 1, two batches later
    src = tmp_path / "many.csv"
    src.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert run("leads", "import", str(src), "--json", "--database-url", url) == 0
    report = out_json(capsys)
    assert isinstance(report, dict)
    assert (report["rows"], report["created"], report["updated"], report["skipped"]) == (
        2501, 2500, 0, 0)
    assert [(w["row"], w["field"]) for w in report["warnings"]] == [(1, "phone")]
    assert "row 2501" in report["warnings"][0]["reason"]
    stored = {x.phone: x for x in asyncio.run(all_leads(url))}
    assert len(stored) == 2500
    first = stored["+14155552000"]
    assert (first.first_name, first.email) == ("Renamed", None)  # the later row, whole


def test_dnc_add_and_list(db_url: str, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run("dnc", "add", "(415) 555-2671", "+14155552671", "nope", "--reason", "asked",
               "--json", "--database-url", db_url) == 2
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["added"], result["already"]) == (1, 0)
    assert [x["input"] for x in result["invalid"]] == ["nope"]
    assert "not a phone number" in result["invalid"][0]["reason"] and "nope" in captured.err

    numbers = tmp_path / "dnc.txt"
    numbers.write_text("# from the complaint log\n+14155552671\n\n212-555-0100  # call\n")
    assert run("dnc", "add", "--file", str(numbers), "--json", "--database-url", db_url) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 1, "already": 1, "invalid": []}
    assert run("dnc", "add", "--json", "--database-url", db_url) == 2
    capsys.readouterr()

    assert run("dnc", "list", "--json", "--database-url", db_url) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(x["phone"], x["reason"]) for x in listed] == [
        ("+12125550100", None), ("+14155552671", "asked")]
    assert set(listed[0]) == {"phone", "reason", "added_at"}

    src = tmp_path / "leads.csv"
    src.write_text("phone\n+14155552671\n")
    assert run("leads", "import", str(src), "--database-url", db_url) == 0
    capsys.readouterr()
    assert run("leads", "show", "+14155552671", "--json", "--database-url", db_url) == 0
    assert json.loads(capsys.readouterr().out)["dnc"] is True


def test_dnc_list_pages_through_everything(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_url(tmp_path, "dnc")
    numbers = tmp_path / "many.txt"
    numbers.write_text("".join(f"+1415555{2000 + i}\n" for i in range(2300)))
    assert run("dnc", "add", "--file", str(numbers), "--json", "--database-url", url) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2300
    assert run("dnc", "list", "--json", "--database-url", url) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2300 and len({x["phone"] for x in listed}) == 2300


# the installed command ----------------------------------------------------------------


def test_console_script_exit_codes_and_no_progress_off_tty(tmp_path: Path) -> None:
    url = fresh_url(tmp_path, "cli")
    src = tmp_path / "leads.csv"
    src.write_text(REALISTIC, encoding="utf-8")
    env = {**os.environ, "LEADLINE_STORE_DATABASE_URL": url}
    done = subprocess.run([LEADLINE, "leads", "import", str(src), "--json"], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""  # not a terminal: no progress bar, no control characters
    assert json.loads(done.stdout)["created"] == 3
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"Phone\n\xff\n")
    done = subprocess.run([LEADLINE, "leads", "import", str(bad)], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 2 and b"row 1: not UTF-8" in done.stderr
    done = subprocess.run([LEADLINE, "leads", "show", "+13125550100"], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 1


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    url = fresh_url(tmp_path, "tty")
    src = tmp_path / "leads.csv"
    src.write_text("phone,first_name\n" + "".join(
        f"+1415555{2000 + i},N{i}\n" for i in range(5000)))
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [LEADLINE, "leads", "import", str(src), "--json", "--database-url", url],
            stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, "TERM": "xterm"})
        os.close(terminal)
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0
        assert proc.stdout is not None
        assert json.loads(proc.stdout.read())["created"] == 5000
    finally:
        os.close(controller)
    assert b"\x1b[" in seen  # the bar was drawn (and erased: transient)



def test_store_failure_mid_import_says_what_was_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real PostgreSQL error in the second batch (a trigger refusing one phone): the
    first batch stays, the message says so, exit 2."""
    import asyncpg

    from tests.store.conftest import PG_URL, pg_schema

    lines = ["phone,first_name"] + [f"+1415555{2000 + i},N{i}" for i in range(1500)]
    src = tmp_path / "leads.csv"
    src.write_text("\n".join(lines) + "\n")

    async def scenario() -> tuple[int, int, str, str]:
        async with pg_schema() as url:
            schema = url.rsplit("search_path=", 1)[1]
            await (await open_database(url)).close()
            conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
            try:
                await conn.execute("""
                    CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                      IF NEW.phone = '+14155553200' THEN
                        RAISE EXCEPTION 'refused by test trigger';
                      END IF;
                      RETURN NEW;
                    END $$ LANGUAGE plpgsql;
                    CREATE TRIGGER refuse BEFORE INSERT ON leads
                      FOR EACH ROW EXECUTE FUNCTION refuse();
                """)
            finally:
                await conn.close()
            code = await asyncio.to_thread(
                run, "leads", "import", str(src), "--json", "--database-url", url)
            stored = len(await all_leads(url))
            captured = capsys.readouterr()
            return code, stored, captured.out, captured.err

    code, stored, out, err = asyncio.run(scenario())
    assert code == 2
    assert stored == 1000  # the first batch (rows 1–1000) committed, the second not at all
    assert "rows 1–1000 imported before the error" in err
    assert "rows 1–1000" in json.loads(out)["error"]


def test_config_file_names_the_database(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_url(tmp_path, "configured")
    config = tmp_path / "leadline.toml"
    config.write_text(f'[store]\ndatabase_url = "{url}"\n')
    src = tmp_path / "leads.csv"
    src.write_text("Mobile,Full Name\n(415) 555-2671,\"Ruiz, Ana\"\n")
    assert run("leads", "import", str(src), "--json", "--config", str(config)) == 0
    assert out_json(capsys)["created"] == 1  # type: ignore[index]
    assert run("leads", "list", "--json", "--config", str(config)) == 0
    [lead] = out_json(capsys)  # type: ignore[misc]
    assert (lead["first_name"], lead["last_name"]) == ("Ana", "Ruiz")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stored=st.lists(stored_leads(), min_size=1, max_size=6, unique_by=lambda x: x.phone))
def test_export_import_round_trip_through_the_store(
    stored: list[Lead], capsys: pytest.CaptureFixture[str]
) -> None:
    """Arbitrary leads (accents, quotes, commas, newlines, odd attribute keys) → CSV →
    store A → export → store B: B holds exactly A's fields."""
    assume(all(normalize_ok(x.phone) for x in stored))
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "first.csv"
        first.write_bytes(leads_to_csv_bytes(stored))
        a, b = fresh_url(Path(tmp), "a"), fresh_url(Path(tmp), "b")
        assert run("leads", "import", str(first), "--json", "--database-url", a) == 0
        assert run("leads", "export", f"{tmp}/a.csv", "--database-url", a) == 0
        assert run("leads", "import", f"{tmp}/a.csv", "--json", "--database-url", b) == 0
        capsys.readouterr()
        in_a, in_b = asyncio.run(all_leads(a)), asyncio.run(all_leads(b))
    assert sorted(map(comparable, in_a)) == sorted(comparable(x) for x in stored)
    assert sorted(map(comparable, in_b)) == sorted(map(comparable, in_a))


def test_dnc_file_may_be_a_csv_with_a_phone_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_url(tmp_path, "dnc-csv")
    log = tmp_path / "complaints.csv"
    log.write_text('Date,Cell Phone,Note\n2025-03-01,(415) 555-2671,"said stop, twice"\n'
                   "2025-03-02,,no number\n2025-03-02,212-555-0100,\n")
    assert run("dnc", "add", "--file", str(log), "--reason", "complaint", "--json",
               "--database-url", url) == 0
    assert json.loads(capsys.readouterr().out) == {"added": 2, "already": 0, "invalid": []}


def test_region_for_national_numbers(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url = fresh_url(tmp_path, "region")
    src = tmp_path / "uk.csv"
    src.write_text("Phone,Name\n020 7946 0958,Ada\n")
    assert run("leads", "import", str(src), "--region", "gb", "--json",
               "--database-url", url) == 0
    assert out_json(capsys)["created"] == 1  # type: ignore[index]
    assert run("leads", "show", "+442079460958", "--json", "--database-url", url) == 0
    capsys.readouterr()
    assert run("leads", "import", str(src), "--region", "XX", "--database-url", url) == 2
    assert "--region 'XX'" in capsys.readouterr().err
