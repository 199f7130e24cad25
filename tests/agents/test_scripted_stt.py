"""The scripted brain hearing callers: a fake recognizer (texts in order), real eSpeak
prompts, a fake call whose transcript hook does what the business observer does
(the flow scores the turn, the safety line goes straight back to the brain)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from agents.brain import CallContext
from agents.business.flow import CallFlow
from agents.business.settings import BusinessSettings, CaptureQuestion
from agents.scripted import ScriptedBrain, State, sounds_like_person
from agents.settings import ScriptedSettings
from agents.stt import Recognition, RecognizerBusy
from media.codecs import ulaw
from tests.agents.test_scripted import FakeCall
from tests.audio import speech_ulaw

SPEECH = speech_ulaw("Hello there.")


class FakeRecognizer:
    """Answers each turn with the next scripted text (an exception is raised instead)."""

    def __init__(self, *texts: str | BaseException, delay_s: float = 0.0) -> None:
        self.texts = list(texts)
        self.turns: list[bytes] = []
        self.delay_s = delay_s

    async def recognize(self, ulaw_audio: bytes) -> Recognition:
        self.turns.append(ulaw_audio)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = self.texts.pop(0) if self.texts else ""
        if isinstance(text, BaseException):
            raise text
        return Recognition(text, 0.5, len(ulaw_audio) / 8000, 0.01)


class ObservedCall(FakeCall):
    """A FakeCall whose caller transcripts reach the flow like `ops.business.Businesses`."""

    def __init__(self, flow: CallFlow | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.brain: ScriptedBrain | None = None

    def transcript(self, role: str, text: str, item_id: str | None = None) -> None:
        super().transcript(role, text, item_id)
        if self.flow is None:
            return
        if role == "agent":
            self.flow.agent_said(text)
            return
        outcome = self.flow.caller_turn(text)
        if outcome.safety_line is not None and self.brain is not None:
            self.brain.safety_first(outcome.safety_line)

    def said(self) -> list[str]:
        return [e[2] for e in self.events if e[0] == "transcript" and e[1] == "agent"]

    def heard(self) -> list[str]:
        return [e[2] for e in self.events if e[0] == "transcript" and e[1] == "caller"]

    def ends(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "end"]


def settings(tmp_path: Path, **overrides: Any) -> ScriptedSettings:
    return msgspec.structs.replace(ScriptedSettings(), messages_directory=str(tmp_path),
                                   **overrides)


PLUMBER = BusinessSettings(
    name="Joe's Plumbing", industry="plumbing", plan="BASIC",
    greeting="Joe's Plumbing, automated assistant. What is going on?",
    end_call_message="Thanks, a plumber will call you back. Goodbye.",
    questions=[
        CaptureQuestion("May I have your name?", "name", essential_for_emergency=True),
        CaptureQuestion("What is your budget?", "budget"),
        CaptureQuestion("What is the address?", "address", essential_for_emergency=True),
    ])


async def start(tmp_path: Path, recognizer: Any, *, flow: CallFlow | None = None,
                context: CallContext | None = None, **overrides: Any
                ) -> tuple[ScriptedBrain, ObservedCall]:
    brain = ScriptedBrain(settings(tmp_path, **overrides), recognizer=recognizer)
    call = ObservedCall(flow)
    call.brain = brain
    if context is None:
        context = CallContext(call_sid="CA1", business=flow.business if flow else None,
                              flow=flow)
    await brain.start(context, call)
    await brain.wait_idle()
    return brain, call


async def turn(brain: ScriptedBrain, audio: bytes = SPEECH) -> None:
    for i in range(0, len(audio), ulaw.FRAME_BYTES):
        brain.push_audio(audio[i:i + ulaw.FRAME_BYTES])
    brain.commit()
    await brain.wait_idle()


async def test_a_recognised_turn_is_the_callers_transcript_then_the_reply(tmp_path: Path) -> None:
    rec = FakeRecognizer("i would like a quote")
    brain, call = await start(tmp_path, rec)
    await turn(brain)
    assert call.heard() == ["i would like a quote"]
    assert call.said()[-1] == brain.settings.reply
    # The recogniser got the turn's audio, every frame of it.
    assert rec.turns == [SPEECH]
    # The caller's words come before the answer to them.
    kinds = [(e[1], e[2]) for e in call.events if e[0] == "transcript"]
    assert kinds.index(("caller", "i would like a quote")) < kinds.index(
        ("agent", brain.settings.reply))
    await brain.close()


async def test_capture_questions_in_order_then_the_end_call_message(tmp_path: Path) -> None:
    flow = CallFlow(PLUMBER)
    rec = FakeRecognizer("i need a new water heater", "ana lopez", "about two thousand",
                         "ten maple drive")
    brain, call = await start(tmp_path, rec, flow=flow)
    for _ in range(4):
        await turn(brain)
    assert call.said() == [PLUMBER.greeting, "May I have your name?", "What is your budget?",
                           "What is the address?", PLUMBER.end_call_message]
    assert {f: a.text for f, a in flow.answers.items()} == {
        "name": "ana lopez", "budget": "about two thousand", "address": "ten maple drive"}
    assert call.ends() == ["capture questions answered"]
    assert brain.state is State.DONE
    await brain.close()


async def test_gas_turn_hears_the_safety_line_first_then_only_essential_questions(
        tmp_path: Path) -> None:
    flow = CallFlow(PLUMBER)
    rec = FakeRecognizer("i think there is a gas leak in the kitchen", "ana lopez")
    brain, call = await start(tmp_path, rec, flow=flow)
    await turn(brain)
    await turn(brain)
    said = call.said()
    assert said[0] == PLUMBER.greeting
    assert "911" in said[1]  # the safety line, before anything is asked
    assert said[2:] == ["May I have your name?", "What is the address?"]
    assert flow.priority == "URGENT" and flow.life_safety
    await brain.close()


@pytest.mark.parametrize("failure", [RuntimeError("decoder crashed"), RecognizerBusy("full")])
async def test_a_recogniser_failure_answers_as_unheard(tmp_path: Path,
                                                        failure: Exception) -> None:
    flow = CallFlow(PLUMBER)
    brain, call = await start(tmp_path, FakeRecognizer(failure), flow=flow)
    await turn(brain)
    # No transcript, but the call goes on as it did without hearing: the next question.
    assert call.heard() == []
    assert call.said() == [PLUMBER.greeting, "May I have your name?"]
    assert brain.stt_failures == 1
    # The menu still works.
    brain.dtmf("1")
    await brain.wait_idle()
    assert brain.state in (State.MESSAGE_PROMPT, State.RECORDING_MESSAGE)
    await brain.close()


async def test_a_slow_recogniser_times_out_to_the_menu(tmp_path: Path) -> None:
    brain, call = await start(tmp_path, FakeRecognizer("too late", delay_s=2.0),
                              stt_timeout_s=0.2)
    await turn(brain)
    assert call.heard() == [] and call.said()[-1] == brain.settings.reply
    assert brain.stt_failures == 1
    await brain.close()


async def test_silence_is_not_sent_to_the_recogniser(tmp_path: Path) -> None:
    rec = FakeRecognizer("never")
    brain, call = await start(tmp_path, rec)
    brain.commit()  # a turn with no audio at all
    await brain.wait_idle()
    assert rec.turns == [] and call.said()[-1] == brain.settings.reply
    await brain.close()


async def test_turn_audio_is_bounded_to_the_last_seconds(tmp_path: Path) -> None:
    rec = FakeRecognizer("hello")
    brain, _ = await start(tmp_path, rec, stt_max_turn_s=1.0)
    await turn(brain, ulaw.SILENT_FRAME * 500)  # 10 s
    assert len(rec.turns[0]) == 8000
    await brain.close()


async def test_phone_tree_keeps_the_brain_quiet_until_a_person_answers(tmp_path: Path) -> None:
    rec = FakeRecognizer("thank you for calling for billing press one",
                         "please hold while we transfer your call",
                         "front desk this is sarah how can i help")
    context = CallContext(call_sid="CA2", direction="outbound",
                          parameters={"DialKey": "job-1:1"})
    brain, call = await start(tmp_path, rec, context=context)
    assert call.said() == [] and brain.core.phone_tree
    await turn(brain)
    await turn(brain)
    assert call.said() == []  # menus are the navigator's, not ours to answer
    assert len(call.heard()) == 2  # ...but the observers heard them
    await turn(brain)
    assert call.said() == [brain.settings.greeting] and not brain.core.phone_tree
    await brain.close()


async def test_on_a_dialer_call_a_do_not_call_turn_is_left_to_the_dialer(
        tmp_path: Path) -> None:
    rec = FakeRecognizer("hello this is karen", "please do not call this number again")
    context = CallContext(call_sid="CA5", direction="outbound",
                          parameters={"DialKey": "job-2:1"})
    brain, call = await start(tmp_path, rec, context=context)
    await turn(brain)
    await turn(brain)
    # The greeting for the person, then nothing over the dialer's goodbye.
    assert call.said() == [brain.settings.greeting]
    assert call.heard()[-1] == "please do not call this number again"
    await brain.close()


async def test_outbound_without_a_dial_key_or_hearing_greets_at_once(tmp_path: Path) -> None:
    context = CallContext(call_sid="CA3", direction="outbound",
                          parameters={"DialKey": "job-1:1"})
    brain, call = await start(tmp_path, None, context=context, stt="off")
    assert call.said() == [brain.settings.greeting]
    await brain.close()


class FakeSales:
    def __init__(self) -> None:
        self.done = False
        self.heard: list[str] = []

    def opening(self) -> str:
        return "Hi, this is the automated assistant from Acme Benefits."

    def caller_turn(self, text: str) -> str | None:
        self.heard.append(text)
        if "not interested" in text:
            self.done = True
            return "Understood, thank you for your time."
        return "Would Tuesday at ten work for a short call?"


async def test_a_sales_call_speaks_the_scripts_lines(tmp_path: Path) -> None:
    sales = FakeSales()
    context = CallContext(call_sid="CA4", direction="outbound")
    context.sales = sales  # type: ignore[attr-defined]
    brain, call = await start(tmp_path, FakeRecognizer("tell me more", "we are not interested"),
                              context=context)
    await turn(brain)
    await turn(brain)
    assert call.said() == [sales.opening(), "Would Tuesday at ten work for a short call?",
                           "Understood, thank you for your time."]
    assert sales.heard == ["tell me more", "we are not interested"]
    assert call.ends() == ["sales script done"]
    await brain.close()


async def test_stt_off_answers_every_turn_at_once_as_before(tmp_path: Path) -> None:
    brain, call = await start(tmp_path, None, stt="off")
    assert brain.recognizer is None and not brain.core.hears
    await turn(brain)
    assert call.heard() == [] and call.said()[-1] == brain.settings.reply
    await brain.close()


async def test_the_default_recogniser_is_the_shared_pocketsphinx_pool(tmp_path: Path) -> None:
    from agents.stt import shared_pool

    brain = ScriptedBrain(settings(tmp_path))
    assert brain.recognizer is shared_pool(1)
    await brain.close()


@pytest.mark.parametrize(("text", "person"), [
    ("front desk this is sarah", True),
    ("hello", True),
    ("yes hello", True),
    ("for billing press one", False),
    ("hello thank you for calling for billing press one", False),
    ("please hold while we transfer your call", False),
    ("", False),
])
def test_sounds_like_person(text: str, person: bool) -> None:
    assert sounds_like_person(text) is person
