"""The analysis observer's wiring without a server: caller memory at the greeting, a
noted transfer, the dialer's outcome read after every observer's call end, the owner
of a call without a business ([sms] owner_phone)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from agents.analysis.analyst import CallAnalyst
from agents.brain import CallContext
from ops import config as config_mod
from ops.call_analysis import CallAnalyses
from tests.agents.analysis.test_analyst import MemoryStore, Recorder


@dataclass
class FakeCall:
    context: CallContext
    transcript_tail: list[tuple[str, str]] = field(default_factory=list)
    end_reason: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def call_sid(self) -> str:
        return self.context.call_sid

    @property
    def duration_s(self) -> float:
        return time.monotonic() - self.started

    def __hash__(self) -> int:
        return id(self)


class Conversation:
    def __init__(self) -> None:
        self.voicemail_left = False
        self.booked = False

    def outcome(self, answered_by: str | None) -> str:
        return ("voicemail_left" if self.voicemail_left
                else "meeting_booked" if self.booked else "declined")


@dataclass
class Live:
    conversation: Conversation
    answered_by: str | None = None


def rig(**env: str) -> tuple[CallAnalyses, MemoryStore, Recorder, dict[str, Live]]:
    cfg = config_mod.load(None, environ={"LEADLINE_SMS_OWNER_PHONE": "+14155550199", **env})
    store, rec = MemoryStore(), Recorder()
    live: dict[str, Live] = {}
    analyst = CallAnalyst(lambda: cfg.analysis, lambda: store, rec)
    observer = CallAnalyses(lambda: cfg, lambda: None, lambda: None,
                            dial_live=live.get, analyst=analyst)
    return observer, store, rec, live


def talk(obs: CallAnalyses, call: FakeCall, role: str, text: str) -> None:
    call.transcript_tail.append((role, text))
    obs.transcript(call, role, text)  # type: ignore[arg-type]


async def test_new_caller_named_during_the_call_is_a_new_lead() -> None:
    obs, store, rec, _ = rig()
    call = FakeCall(CallContext("CA1", from_number="+14155552671", to_number="+14155550100"))
    obs.call_started(call)  # type: ignore[arg-type]
    call.context.caller_name = ""  # the lookup before the greeting: no name yet
    talk(obs, call, "agent", "Hello, may I have your name?")
    call.context.caller_name = "Raj Patel"  # captured
    obs.caller_named(call, "Raj Patel")  # type: ignore[arg-type]
    talk(obs, call, "caller", "It's Raj Patel, my sink is leaking.")
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.stop()
    row = store.rows["CA1"]
    assert row["new_lead"] and row["caller_name"] == "Raj Patel"
    assert row["outcome"] == "message_taken"
    assert [t[0] for t in rec.texts] == ["+14155550199"]  # [sms] owner_phone


async def test_returning_caller_and_transfer() -> None:
    obs, store, rec, _ = rig()
    call = FakeCall(CallContext("CA2", from_number="+14155552671", caller_name="Ann"))
    obs.call_started(call)  # type: ignore[arg-type]
    talk(obs, call, "agent", "Welcome back, Ann.")
    talk(obs, call, "caller", "Can I talk to a person please?")
    assert obs.transfer(call, "+14155550111") is False  # noted, carried out by the next
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.stop()
    assert store.rows["CA2"]["outcome"] == "transferred"
    assert not store.rows["CA2"]["new_lead"] and rec.texts == []


async def test_dial_outcome_is_read_after_the_dialer_finished() -> None:
    obs, store, rec, live = rig()
    call = FakeCall(CallContext("CA3", from_number="+14155550100", to_number="+14155552671",
                                direction="outbound"))
    live["CA3"] = Live(Conversation())
    obs.call_started(call)  # type: ignore[arg-type]
    talk(obs, call, "caller", "Hi, this is the voicemail of Ann.")
    obs.call_ended(call)  # type: ignore[arg-type]
    live["CA3"].conversation.voicemail_left = True  # the dialer's own call_ended, after ours
    del live["CA3"]
    await obs.stop()
    assert store.rows["CA3"]["outcome"] == "voicemail_left"
    assert not store.rows["CA3"]["success"] and rec.texts == []


async def test_booked_outbound_call_notifies_the_owner() -> None:
    obs, store, rec, live = rig()
    call = FakeCall(CallContext("CA4", to_number="+14155552671", direction="outbound"))
    conv = Conversation()
    live["CA4"] = Live(conv)
    obs.call_started(call)  # type: ignore[arg-type]
    talk(obs, call, "caller", "Sure, Tuesday at three works.")
    conv.booked = True
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.stop()
    assert store.rows["CA4"]["outcome"] == "meeting_booked" and store.rows["CA4"]["success"]
    assert [o for _, _, o in rec.texts] == ["new-lead:sms:CA4"]


async def test_disabled_writes_nothing() -> None:
    obs, store, _, _ = rig(LEADLINE_ANALYSIS_ENABLED="false")
    call = FakeCall(CallContext("CA5", from_number="+14155552671"))
    obs.call_started(call)  # type: ignore[arg-type]
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.stop()
    await asyncio.sleep(0)
    assert store.rows == {}
    assert obs.status()["analysed"] == 0




async def test_counters_reach_the_metrics_collector() -> None:
    from ops.call_analysis import AnalysisCollector

    obs, _, _, _ = rig()
    call = FakeCall(CallContext("CA6", from_number="+14155552671", caller_name=""))
    obs.call_started(call)  # type: ignore[arg-type]
    talk(obs, call, "caller", "My sink is leaking.")
    obs.call_ended(call)  # type: ignore[arg-type]
    await obs.stop()
    families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples
                         if s.name.endswith("_total")}
                for f in AnalysisCollector(obs).collect()}
    assert families["leadline_call_analyses"][("analysed",)] == 1
    assert families["leadline_new_lead_notices"][("sent",)] == 1
