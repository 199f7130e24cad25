"""Businesses end to end: the real server, `sim call` signed like Twilio, the Twilio REST
fake for the owner's texts, real SQL.

The config is a TOML file with `[[businesses]]`, as an operator writes it; the called
number picks the business.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.dev.sim import SimOptions, sim_call
from tests.audio import speech_ulaw
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import AUTH_TOKEN, Server, calls_closed, eventually, start_server

pytestmark = pytest.mark.e2e

ACCOUNT_SID = "AC" + "5" * 32
PLUMBER_NUMBER = "+14155550100"
SALON_NUMBER = "+14155550111"
PLUMBER_OWNER = "+14155550199"
SALON_OWNER = "+14155550188"
CALLER = "+14155552671"

CONFIG = textwrap.dedent("""
    [[businesses]]
    name = "Joe's Plumbing"
    numbers = ["{plumber}"]
    industry = "plumbing"
    timezone = "America/Los_Angeles"
    plan = "PRO"
    greeting = "Joe's Plumbing, this is the automated assistant. What is going on?"
    owner = {{ phone = "{plumber_owner}" }}

    [[businesses]]
    name = "Curl Up Salon"
    numbers = ["{salon}"]
    plan = "BASIC"
    owner = {{ phone = "{salon_owner}" }}
""").format(plumber=PLUMBER_NUMBER, plumber_owner=PLUMBER_OWNER, salon=SALON_NUMBER,
            salon_owner=SALON_OWNER)


@dataclass
class Rig:
    server: Server
    twilio: FakeTwilioRest
    config_path: Path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    twilio = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    path = tmp_path / "leadline.toml"
    path.write_text(CONFIG, encoding="utf-8")
    env = {
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_SMS_FROM_NUMBER": "+14155550123",
        "LEADLINE_SMS_OUTBOX_POLL_S": "0.2",
        "LEADLINE_BRAIN_KIND": "scripted",
    }
    server, runner = await start_server(env, str(path))
    try:
        yield Rig(server, twilio, path)
    finally:
        await runner.cleanup()
        await twilio.stop()


def _texts_to(twilio: FakeTwilioRest, number: str) -> list[str]:
    return [m.body for m in twilio.messages if m.to == number]


async def test_plan_without_voice_gets_a_polite_message_and_the_owner_a_text(rig: Rig) -> None:
    result = await sim_call(SimOptions(url=rig.server.url, auth_token=AUTH_TOKEN,
                                       from_number=CALLER, to_number=SALON_NUMBER,
                                       hangup_after_s=5))
    assert "<Say>" in result.twiml and "Curl Up Salon" in result.twiml
    assert "<Hangup" in result.twiml and "<Stream" not in result.twiml
    assert rig.server.runtime.calls.started == 0
    assert rig.server.runtime.twilio_stats.rejected_no_voice == 1
    texts = await eventually(lambda: _texts_to(rig.twilio, SALON_OWNER),
                             "the salon owner got a text")
    assert texts == [texts[0]] and CALLER in texts[0] and "Curl Up Salon" in texts[0]
    db = rig.server.runtime.persistence.db
    stored = [m for m in await db.list_messages(SALON_OWNER) if m.direction == "outbound"]
    assert [m.purpose for m in stored] == ["notification"]
    assert _texts_to(rig.twilio, PLUMBER_OWNER) == []


async def test_called_number_picks_the_business_greeting(rig: Rig) -> None:
    result = await sim_call(SimOptions(url=rig.server.url, auth_token=AUTH_TOKEN,
                                       from_number=CALLER, to_number=PLUMBER_NUMBER,
                                       hangup_after_s=8, audio=speech_ulaw("Hello there.")))
    assert "<Stream" in result.twiml
    await calls_closed(rig.server)
    db = rig.server.runtime.persistence.db

    async def first_turn() -> str | None:
        detail = await db.get_call(result.call_sid)
        return detail.turns[0].text if detail and detail.turns else None

    first = await eventually(first_turn, "the greeting was stored")
    assert first.startswith("Joe's Plumbing")


async def test_unknown_number_gets_the_default_and_reload_swaps_the_table(rig: Rig) -> None:
    registry = rig.server.runtime.businesses.registry()
    assert registry.for_number("+14155559999").name == "Joe's Plumbing"
    # Hot reload: the salon becomes the default; a broken file keeps the old table.
    rig.config_path.write_text(CONFIG.replace('plan = "BASIC"', 'plan = "BASIC"\ndefault = true'),
                               encoding="utf-8")
    await eventually(lambda: rig.server.runtime.businesses.registry().for_number(
        "+14155559999").name == "Curl Up Salon", "the reloaded default")
    bad = CONFIG + "\n[[businesses]]\nname = \"Extra\"\nplan = \"FREE\"\n" + "\n".join(
        f'[[businesses.questions]]\ntext = "Q{i}?"\nfield = "q{i}"' for i in range(6))
    await asyncio.sleep(0.05)
    rig.config_path.write_text(bad, encoding="utf-8")
    reloader = rig.server.runtime.reloader
    await eventually(lambda: reloader.last is not None and not reloader.last.ok,
                     "the bad reload was refused")
    assert "questions" in (reloader.last.error or "")
    assert rig.server.runtime.businesses.registry().for_number(
        "+14155559999").name == "Curl Up Salon"


async def test_without_businesses_calls_behave_as_before(tmp_path: Path) -> None:
    server, runner = await start_server({"LEADLINE_BRAIN_KIND": "scripted"})
    try:
        assert server.runtime.businesses.registry() is None
        result = await sim_call(SimOptions(url=server.url, auth_token=AUTH_TOKEN,
                                           hangup_after_s=6))
        assert "<Stream" in result.twiml
    finally:
        await runner.cleanup()


