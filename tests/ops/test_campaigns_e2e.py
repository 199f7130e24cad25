"""`leadline campaigns …` and `leadline report` end to end through the real CLI entry point,
on a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ops.cli import main
from store.database import open_database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML
from tests.store.conftest import BACKENDS, backend_url

LEADLINE = str(Path(sys.executable).with_name("leadline"))
PHONES = ["+12125550101", "+14155550102", "+13055550103"]


@pytest.fixture(params=BACKENDS)
async def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Path]:
    async with backend_url(request.param, tmp_path) as url:
        db = await open_database(url)
        await db.upsert_leads([LeadInput(phone=p, first_name=f"N{i}", state=None)
                               for i, p in enumerate(PHONES)])
        await db.close()
        cfg = tmp_path / "leadline.toml"
        cfg.write_text(f'[store]\ndatabase_url = "{url}"\n[sms]\nfrom_number = "+14155550123"\n'
                       'business_name = "Acme"\nbooking_url = "https://b.example/x"\n')
        yield cfg


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith(("{", "[")) else out


async def test_load_enroll_tick_report(config_file: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    camp = tmp_path / "c.toml"
    camp.write_text(CAMPAIGN_TOML)
    c = str(config_file)

    def go(*argv: str) -> tuple[int, object]:
        return run(capsys, *argv)

    async def in_thread(*argv: str) -> tuple[int, object]:
        return await asyncio.to_thread(go, *argv)

    code, out = await in_thread("campaigns", "load", str(camp), "--config", c, "--json")
    assert code == 0 and out == {"name": "reactivation", "created": True, "touches": 3,
                                 "paused": False}
    lst = tmp_path / "phones.csv"
    lst.write_text("name,phone\nA,(212) 555-0101\nB,+14155550102\nC,not a phone\nD,+12025550199\n")
    code, out = await in_thread("campaigns", "enroll", "reactivation", "--file", str(lst),
                                "--now", "2026-06-09T06:00:00Z", "--config", c, "--json")
    assert code == 0
    assert out == {"enrolled": 2, "already": 0, "skipped": [
        {"lead": "not a phone", "reason": "invalid_number"},
        {"lead": "+12025550199", "reason": "not_a_lead"}]}
    code, out = await in_thread("campaigns", "enroll", "reactivation", "--all",
                                "--now", "2026-06-09T06:00:00Z", "--config", c, "--json")
    assert out == {"enrolled": 1, "already": 2, "skipped": []}
    # 02:00 in New York, 23:00 in California: every touch deferred to the window.
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T06:00:00Z",
                                "--config", c, "--json")
    assert code == 0 and out["sent"] == [] and out["skipped"] == []  # type: ignore[index]
    until = {d["lead"]: d["until"] for d in out["deferred"]}  # type: ignore[index]
    assert until == {"+12125550101": "2026-06-09T12:00:00Z",
                     "+14155550102": "2026-06-09T15:00:00Z",
                     "+13055550103": "2026-06-09T12:00:00Z"}
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T12:30:00Z",
                                "--config", c, "--json")
    assert sorted(s["lead"] for s in out["sent"]) == ["+12125550101", "+13055550103"]  # type: ignore[index]
    assert all(s["touch"] == 1 and s["channel"] == "sms" for s in out["sent"])  # type: ignore[index]
    code, out = await in_thread("campaigns", "preview", "reactivation", "--lead",
                                "+12125550101", "--config", c, "--json")
    assert code == 0 and out[0]["body"].startswith("Hi N0, it's Acme.")  # type: ignore[index]
    code, out = await in_thread("campaigns", "pause", "reactivation", "--config", c)
    assert code == 0
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T16:00:00Z",
                                "--config", c, "--json")
    assert out["sent"] == []  # type: ignore[index]
    await in_thread("campaigns", "resume", "reactivation", "--config", c)
    code, out = await in_thread("campaigns", "tick", "--now", "2026-06-09T16:00:00Z",
                                "--config", c, "--json")
    assert [s["lead"] for s in out["sent"]] == ["+14155550102"]  # type: ignore[index]
    code, out = await in_thread("report", "--config", c, "--json")
    assert code == 0
    [rep] = out  # type: ignore[misc]
    # Queued, not yet accepted by Twilio (no sender ran): nothing counts as sent yet.
    assert rep["name"] == "reactivation" and rep["enrolled"] == 3 and rep["sent"] == 0
    code, text = await in_thread("report", "--config", c)
    assert code == 0 and "reactivation" in str(text)


async def test_bad_input_exit_codes(config_file: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\n'
                   'template = "Hi {fist_name}"\n')
    c = str(config_file)
    code = await asyncio.to_thread(main, ["campaigns", "load", str(bad), "--config", c])
    err = capsys.readouterr().err
    assert code == 2 and "touch 1" in err and "{fist_name}" in err
    code = await asyncio.to_thread(main, ["campaigns", "enroll", "nope", "--all",
                                          "--config", c])
    assert code == 1
    code = await asyncio.to_thread(main, ["campaigns", "tick", "--now", "yesterday",
                                          "--config", c])
    assert code == 2


def test_help_is_quick_and_lists_the_commands() -> None:
    out = subprocess.run([LEADLINE, "campaigns", "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for word in ("load", "enroll", "tick", "pause", "resume", "preview"):
        assert word in out
