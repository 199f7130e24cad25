"""`leadline dev fake-llm` answers a coach request with guidance the coach accepts."""

from __future__ import annotations

from agents.chat.llm import OpenAIChatClient
from agents.coach.core import CoachCore, CoachStats
from ops.dev.fake_llm import Rule, Script, serve_fake_llm
from tests.fakes.clock import ManualClock


async def test_coach_requests_get_valid_guidance_that_ticks_the_checklist() -> None:
    runner = await serve_fake_llm(0, Script(rules=(Rule(match="price", reply="It is $49."),)))
    client = OpenAIChatClient(base_url=runner.base_url, api_key="", model="gpt-4o-mini",
                              timeout_s=5.0)
    core = CoachCore(objectives=["Say hello", "Learn the carrier", "Book"],
                     clock=ManualClock(), stats=CoachStats())
    try:
        core.heard("agent", "Hello there")
        notes = []
        for _ in range(2):
            text = await client.complete(core.request(), json_mode=True)
            notes.append(core.reply(text))
        # A rule still wins over the coach default (faults can be scripted per transcript).
        core.heard("caller", "what is the price?")
        assert await client.complete(core.request(), json_mode=True) == "It is $49."
        # An SMS request (no coach prompt) still gets the default reply.
        sms = await client.complete([{"role": "user", "content": "hi"}], json_mode=False)
    finally:
        await client.close()
        await runner.cleanup()
    assert core.done.keys() == {"Say hello", "Learn the carrier"}
    assert notes[0] is not None and "Work on: Learn the carrier" in notes[0]
    assert notes[1] is not None and "Work on: Book" in notes[1]
    assert sms == Script().default_reply
