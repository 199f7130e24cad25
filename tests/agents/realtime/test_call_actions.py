"""The end_call / transfer_call tools through the server's real call glue (runtime, brain
selection, call manager, call) to the fake Twilio API; the REST client itself is tested in
tests/telephony/test_twilio_rest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agents.brain import CallContext
from ops.dev.fake_realtime import Script, ScriptedToolCall, Turn
from tests.agents.realtime.conftest import CALL_SID, eventually, say
from tests.fakes.twilio_rest import FakeTwilioRest

ACCOUNT = "AC" + "f" * 32
TOKEN = "secret-token"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioRest]:
    fake = await FakeTwilioRest(ACCOUNT, TOKEN, live_calls={CALL_SID}).start()
    yield fake
    await fake.stop()


class InstantLeg:
    """A phone leg that plays every frame the moment it is sent (checkpoints come back
    at once) and records hang-ups: the call's own glue decides when to hang up."""

    def __init__(self) -> None:
        self.call: Any = None
        self.frames = 0
        self.hang_ups: list[str] = []

    def send_media(self, ulaw_frame: bytes) -> bool:
        self.frames += 1
        return True

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        self.call.played(item_id, ms)
        return True

    def send_clear(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def hang_up(self, reason: str) -> None:
        self.hang_ups.append(reason)


@asynccontextmanager
async def live_call(runner: Any, twilio: FakeTwilioRest, tmp_path: Path
                    ) -> AsyncIterator[tuple[Any, InstantLeg]]:
    """A call opened by the server's own runtime (brain selection, call manager, REST
    transfer glue, media clock), without the HTTP and Media Streams layers."""
    from ops import config as config_mod
    from ops.app import Runtime

    cfg = config_mod.load(environ={
        "LEADLINE_BRAIN_KIND": "openai", "LEADLINE_OPENAI_API_KEY": "sk-test",
        "LEADLINE_OPENAI_BASE_URL": runner.websocket_base_url,
        "LEADLINE_OPENAI_TRANSFER_NUMBER": "+14155550123",
        "LEADLINE_TWILIO_ACCOUNT_SID": ACCOUNT, "LEADLINE_TWILIO_AUTH_TOKEN": TOKEN,
        "LEADLINE_TWILIO_API_BASE_URL": twilio.base_url,
        "LEADLINE_STORE_DATABASE_URL": f"sqlite:///{tmp_path}/leadline.db",
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
    })
    runtime = Runtime(cfg, None)
    await runtime.start(web.Application())  # database, prompts, the media clock
    leg = InstantLeg()
    try:
        call = runtime.calls.open(CallContext(call_sid=CALL_SID), leg)
        leg.call = call
        yield call, leg
    finally:
        await runtime.stop(web.Application())


@pytest.mark.e2e
async def test_transfer_call_tool_reaches_twilio_through_the_servers_glue(
        fake_factory, twilio: FakeTwilioRest, tmp_path: Path) -> None:
    runner = await fake_factory(Script(speed=0, turns=(
        Turn(tool_calls=(ScriptedToolCall("transfer_call", {}),), after_tool_reply="Okay."),
    )))
    async with live_call(runner, twilio, tmp_path) as (call, leg):
        await eventually(lambda: leg.frames)  # the greeting is playing
        await say(call.brain)
        await eventually(lambda: twilio.updates)
        assert leg.hang_ups == []  # <Dial> replaces the stream; we do not hang up ourselves
    (update,) = twilio.updates
    assert update.call_sid == CALL_SID
    assert update.twiml is not None and update.twiml[0].tag == "Dial"
    assert update.twiml[0][0].text == "+14155550123"


@pytest.mark.e2e
async def test_end_call_tool_hangs_up_the_leg_once_the_goodbye_played(
        fake_factory, twilio: FakeTwilioRest, tmp_path: Path) -> None:
    runner = await fake_factory(Script(speed=0, turns=(
        Turn(tool_calls=(ScriptedToolCall("end_call", {"reason": "done"}),),
             after_tool_reply="Goodbye."),
    )))
    async with live_call(runner, twilio, tmp_path) as (call, leg):
        await eventually(lambda: leg.frames)
        await say(call.brain)
        await eventually(lambda: leg.hang_ups)
        assert call.media.playout.idle  # not before the goodbye was heard
        assert leg.hang_ups == [call.hangup_reason] and "done" in call.hangup_reason
    assert twilio.updates == []  # ending the stream ends the call: no REST request
