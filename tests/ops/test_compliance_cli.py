"""`leadline compliance check`: the exact JSON contract, exit codes, --file mode, and the
store's opt-outs/DNC/lead state on both backends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from ops.cli import main
from store.database import open_database
from store.models import LeadInput

KEYS = ["to", "at", "channel", "allowed", "reason", "zones", "next_allowed_at"]
PG_URL = os.environ.get(
    "LEADLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MIAMI, NYC, OPTED, BLOCKED = "+13055550123", "+12125550123", "+14105550123", "+12035550123"


async def _seed(url: str) -> None:
    db = await open_database(url)
    try:
        await db.add_consent_event(OPTED, "opt_out", "sms", "take me off your list")
        await db.dnc_add([BLOCKED])
        await db.upsert_leads([LeadInput(NYC, state="FL")])
    finally:
        await db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def config_file(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A config whose [store] is a seeded database on each backend."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/cli.db"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.close()

        asyncio.run(create())
        url = f"{PG_URL}?search_path={schema}"
    asyncio.run(_seed(url))
    path = tmp_path / "leadline.toml"
    path.write_text(f'[store]\ndatabase_url = "{url}"\n', encoding="utf-8")
    yield str(path)
    if schema:
        async def drop() -> None:
            conn = await asyncpg.connect(PG_URL, timeout=5)
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.close()

        asyncio.run(drop())


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:  # type: ignore[type-arg]
    code = main(["compliance", "check", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_single_check_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, [answer], _ = run(["--to", "(305) 555-0123", "--at", "2026-06-10T12:00:00-04:00",
                             "--no-store"], capsys)
    assert code == 0
    assert list(answer) == KEYS
    assert answer == {"to": MIAMI, "at": "2026-06-10T12:00:00-04:00", "channel": "sms",
                      "allowed": True, "reason": "allowed", "zones": ["America/New_York"],
                      "next_allowed_at": None}


def test_refusal_exits_3_with_next_allowed_in_utc(capsys: pytest.CaptureFixture[str]) -> None:
    code, [answer], _ = run(["--to", MIAMI, "--at", "2026-06-10T20:00:00-04:00",
                             "--channel", "voice", "--no-store"], capsys)
    assert code == 3
    assert (answer["reason"], answer["channel"]) == ("quiet_hours", "voice")
    assert answer["next_allowed_at"] == "2026-06-11T12:00:00+00:00"
    # Z and naive times are UTC, normalised on output.
    code, [z], _ = run(["--to", MIAMI, "--at", "2026-06-10T16:00:00Z", "--no-store"], capsys)
    assert (code, z["at"]) == (0, "2026-06-10T16:00:00+00:00")
    code, [naive], _ = run(["--to", MIAMI, "--at", "2026-06-10T16:00", "--no-store"], capsys)
    assert (code, naive["at"]) == (0, "2026-06-10T16:00:00+00:00")


def test_state_option_and_zone_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    evening = "2026-06-10T20:30:00-04:00"
    assert run(["--to", NYC, "--at", evening, "--no-store"], capsys)[0] == 0
    code, [answer], _ = run(["--to", NYC, "--at", evening, "--state", "FL", "--no-store"],
                            capsys)
    assert (code, answer["reason"]) == (3, "quiet_hours")
    code, [toll], _ = run(["--to", "+18005550123", "--at", evening, "--no-store"], capsys)
    assert (code, toll["reason"], toll["zones"], toll["next_allowed_at"]) == (
        3, "zone_unknown", [], None)
    code, [mail], _ = run(["--to", MIAMI, "--at", "2026-06-10T03:00:00-04:00", "--channel",
                           "email", "--no-store"], capsys)
    assert (code, mail["allowed"]) == (0, True)


@pytest.mark.parametrize(
    "argv",
    [["--to", "+1555", "--at", "2026-06-10T12:00:00Z"],
     ["--to", "not a number", "--at", "2026-06-10T12:00:00Z"],
     ["--to", MIAMI, "--at", "yesterday"],
     ["--to", MIAMI, "--at", "2026-13-40T12:00:00Z"]],
)
def test_bad_input_exits_2_with_a_message(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([*argv, "--no-store"], capsys)
    assert (code, out) == (2, [])
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_file_mode_answers_every_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = tmp_path / "check.tsv"
    tsv.write_text(
        "# number\tat\tchannel\tstate\n"
        f"{MIAMI}\t2026-06-10T12:00:00-04:00\tsms\n"
        f"{MIAMI}\t2026-06-10T22:00:00-04:00\tvoice\n"
        "\n"
        "+1555\t2026-06-10T12:00:00Z\tsms\n"
        f"{NYC}\t2026-06-11T00:30:00Z\t\tFL\n"
        f"{NYC}\tnot-a-time\tsms\n"
        f"{NYC}\t2026-06-10T12:00:00Z\tfax\n"
        f"{NYC}\r\n",
        encoding="utf-8")
    code, answers, err = run(["--file", str(tsv), "--no-store"], capsys)
    assert code == 0
    assert [a["reason"] for a in answers] == [
        "allowed", "quiet_hours", "invalid_number", "quiet_hours", "invalid_input",
        "invalid_input", "invalid_input"]
    assert list(answers[2]) == KEYS and answers[2]["to"] == "+1555"
    assert answers[3]["channel"] == "sms"
    assert all(not a["allowed"] for a in answers[1:])
    assert "line 7" in err and "line 8" in err and "line 9" in err


def test_store_facts_block_every_channel(config_file: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    noon = "2026-06-10T12:00:00-04:00"
    for channel in ("sms", "voice", "email"):
        code, [a], _ = run(["--to", OPTED, "--at", noon, "--channel", channel,
                            "--config", config_file], capsys)
        assert (code, a["reason"]) == (3, "opted_out")
        code, [b], _ = run(["--to", BLOCKED, "--at", noon, "--channel", channel,
                            "--config", config_file], capsys)
        assert (code, b["reason"]) == (3, "dnc")
    # The stored lead's state (FL) applies when --state is not given.
    code, [lead], _ = run(["--to", NYC, "--at", "2026-06-10T20:30:00-04:00",
                           "--config", config_file], capsys)
    assert (code, lead["reason"]) == (3, "quiet_hours")
    assert run(["--to", MIAMI, "--at", noon, "--config", config_file], capsys)[0] == 0
    # --file consults the store per line too, with one connection.
    tsv = Path(config_file).with_name("f.tsv")
    tsv.write_text(f"{OPTED}\t{noon}\temail\n{MIAMI}\t{noon}\tsms\n", encoding="utf-8")
    code, answers, _ = run(["--file", str(tsv), "--config", config_file], capsys)
    assert (code, [a["reason"] for a in answers]) == (0, ["opted_out", "allowed"])


def test_a_check_does_not_write_the_audit_trail(config_file: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run(["--to", MIAMI, "--at", "2026-06-10T12:00:00-04:00", "--config", config_file], capsys)
    url = Path(config_file).read_text().split('"')[1]

    async def audit_count() -> int:
        db = await open_database(url)
        try:
            return len(await db.list_audit(kind="compliance"))
        finally:
            await db.close()

    assert asyncio.run(audit_count()) == 0


def test_missing_database_means_rules_alone_and_is_not_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\ndatabase_url = "sqlite:///{tmp_path}/none.db"\n', encoding="utf-8")
    code, out, err = run(["--to", MIAMI, "--at", "2026-06-10T12:00:00Z", "--config", str(cfg)],
                         capsys)
    # Nothing was ever recorded, so nothing is opted out: noon in Miami is allowed.
    assert code == 0 and [(o["allowed"], o["reason"]) for o in out] == [(True, "allowed")]
    assert not (tmp_path / "none.db").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text('[compliance]\ncap_per_24h = 9\n', encoding="utf-8")
    code, _, err = run(["--to", MIAMI, "--config", str(bad), "--no-store"], capsys)
    assert code == 2 and "cap_per_24h" in err


def test_business_window_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[compliance]\nwindow_start = "10:00"\nwindow_end = "18:00"\n',
                   encoding="utf-8")
    code, [a], _ = run(["--to", NYC, "--at", "2026-06-10T09:00:00-04:00", "--config", str(cfg),
                        "--no-store"], capsys)
    assert (code, a["next_allowed_at"]) == (3, "2026-06-10T14:00:00+00:00")


def test_the_installed_command(tmp_path: Path) -> None:
    leadline = Path(sys.executable).with_name("leadline")
    proc = subprocess.run(
        [str(leadline), "compliance", "check", "--to", MIAMI, "--at",
         "2026-06-10T23:00:00-04:00", "--no-store"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["next_allowed_at"] == "2026-06-11T12:00:00+00:00"
