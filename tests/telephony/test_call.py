"""One `Call`: the glue between leg, media engine, brain and hooks, on virtual time.

The latency split (brain's share, ours, the caller's) runs on a manual clock
through the real engine and playout; the greeting's lookup budget and the
fallback brain run on the `virtual_time` loop, so their timeouts are checked at
exact instants without waiting for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.brain import Brain, BrainOutput, CallContext, Role
from media.engine import MediaEngine
from media.settings import MediaSettings, VadSettings
from media.vad import make_engine
from telephony.call import GREETING_LOOKUP_BUDGET_S, Call, CallHooks, CallLatency
from tests.audio import speech_ulaw
from tests.fakes.clock import ManualClock, VirtualTime

# --- the latency split, deterministically (manual clock, real engine and playout) --------


class _Leg:
    def __init__(self) -> None:
        self.frames = 0

    def send_media(self, ulaw_frame: bytes) -> bool:
        self.frames += 1
        return True

    def send_checkpoint(self, item_id: str, ms: int) -> bool:
        return True

    def flush(self) -> None:
        pass

    def send_clear(self) -> bool:
        return True

    def hang_up(self, reason: str) -> None:
        pass


class _Brain(Brain):
    """Stands in for RealtimeBrain: it has the first-audio hook the call attaches."""

    kind = "openai"

    def __init__(self, hooked: bool = True, kind: str = "openai", fail_start: bool = False,
                 ) -> None:
        if hooked:
            self.on_first_audio: Any = None
        self.kind = kind
        self.fail_start = fail_start
        self.commits = 0
        self.started_with: str | None = None
        self.closed = False

    async def start(self, context: CallContext, output: BrainOutput) -> None:
        if self.fail_start:
            raise ConnectionError("service unreachable")
        self.started_with = context.caller_name or ""

    def push_audio(self, ulaw: bytes) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1

    def cancel(self) -> None:
        pass

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        pass

    async def close(self) -> None:
        self.closed = True


class RecordingHooks:
    """`CallHooks`, every method spelled out and recorded: a hook the call gains or
    renames fails here (AttributeError) instead of being answered by a catch-all."""

    def __init__(self, lookup_s: float = 0.0, caller_name: str | None = None) -> None:
        self.lookup_s = lookup_s
        self.caller_name = caller_name
        self.events: list[tuple[str, object]] = []
        self.fallbacks = 0

    async def before_greeting(self, call: Call) -> None:
        self.events.append(("before_greeting", call.call_sid))
        await asyncio.sleep(self.lookup_s)
        if self.caller_name:
            call.context.caller_name = self.caller_name

    def on_transcript(self, call: Call, role: Role, text: str) -> None:
        self.events.append(("transcript", (role, text)))

    def on_caller_named(self, call: Call, name: str) -> None:
        self.events.append(("caller_named", name))

    def on_transfer(self, call: Call, number: str) -> None:
        self.events.append(("transfer", number))

    def on_send_dtmf(self, call: Call, digits: str) -> None:
        self.events.append(("send_dtmf", digits))

    def fallback_brain(self, call: Call) -> Brain:
        self.fallbacks += 1
        return _Brain(kind="scripted")


class _Rig:
    def __init__(self, brain: _Brain, hooks: RecordingHooks | None = None) -> None:
        self.clock = ManualClock(100.0)
        self.latency = CallLatency(window=16)
        self.engine = MediaEngine(make_engine(VadSettings()), VadSettings(), MediaSettings(),
                                  clock_now=lambda: self.clock.now * 1000)
        self.leg = _Leg()
        self.brain = brain
        self.hooks = hooks or RecordingHooks()
        self.call = Call(CallContext("CA" + "0" * 32), self.leg, brain, self.hooks,
                         now=self.clock, latency=self.latency)
        self.call.media = self.engine.add_call(self.call)

    def at(self, t: float) -> _Rig:
        self.clock.now = t
        return self

    def tick(self, t: float) -> None:
        self.clock.now = t
        self.engine.tick(t * 1000)

    def first_audio(self, t: float, item: str) -> None:
        """What the Realtime session does on a response's first delta: hook, then audio."""
        self.clock.now = t
        hook = getattr(self.call.brain, "on_first_audio", None)
        if hook is not None:
            hook(item, t)
        self.call.agent_audio(item, speech_ulaw("Sure.")[:1600])

    def samples(self, share: str) -> list[float]:
        rings = self.latency.by_brain.get("openai")
        return [round(v, 6) for v in getattr(rings, share).values()] if rings else []


async def test_turn_latency_split_on_a_virtual_clock() -> None:
    rig = _Rig(_Brain())
    await rig.call.start_brain()
    assert rig.samples("start") == [0.0]
    # The greeting: stream start (t=100) to its first frame.
    rig.first_audio(100.4, "greeting")
    rig.tick(100.41)
    assert rig.samples("greeting") == [0.41]
    assert rig.samples("turn") == []  # no caller turn was waiting for it
    rig.call.agent_audio_done("greeting")
    for i in range(20):  # every frame of it handed out
        rig.tick(100.42 + 0.02 * i)
    # A caller turn: commit at 102.0, first delta at 102.25, first frame at the next tick.
    rig.at(102.0).call.end_of_turn(None)
    assert rig.brain.commits == 1
    rig.first_audio(102.25, "answer")
    rig.first_audio(102.26, "answer")  # later deltas change nothing
    frames = rig.leg.frames
    rig.tick(102.262)
    assert rig.leg.frames > frames
    assert rig.samples("brain") == [0.25]
    assert rig.samples("ours") == [0.012]
    assert rig.samples("turn") == [0.262]


async def test_no_our_share_when_the_answer_is_flushed_or_queued_behind_other_audio() -> None:
    rig = _Rig(_Brain())
    await rig.call.start_brain()
    rig.first_audio(100.1, "greeting")
    # The caller's turn ends while the greeting is still queued: the answer's first
    # frame waits behind it, which is not our overhead.
    rig.at(100.15).call.end_of_turn(None)
    rig.first_audio(100.2, "answer")
    rig.tick(100.22)
    assert rig.samples("brain") == [0.05]
    assert rig.samples("ours") == [] and rig.samples("turn") == []
    assert rig.samples("greeting") == [0.22]
    # Barge-in between the first delta and its first frame: nothing to measure.
    rig.at(101.0).call.end_of_turn(None)
    rig.first_audio(101.1, "answer-2")
    rig.at(101.11).call.barge_in("answer-2", 0)
    rig.call.agent_audio("answer-3", speech_ulaw("Sure.")[:1600])
    rig.tick(101.12)
    assert rig.samples("brain") == [0.05, 0.1]
    assert rig.samples("ours") == [] and rig.samples("turn") == []


async def test_a_brain_without_the_hook_is_measured_at_its_first_audio() -> None:
    rig = _Rig(_Brain(hooked=False))
    await rig.call.start_brain()
    rig.at(100.5).call.end_of_turn(None)
    rig.first_audio(100.8, "answer")
    rig.tick(100.81)
    assert rig.samples("brain") == [0.3]
    assert rig.samples("ours") == [0.01]


# --- hooks and start-up, on the virtual-time loop ------------------------------------------


def test_the_recording_hooks_answer_every_call_hook() -> None:
    wanted = {n for n in dir(CallHooks) if not n.startswith("_")}
    have = {n for n in dir(RecordingHooks) if not n.startswith("_") and
            callable(getattr(RecordingHooks, n))}
    assert wanted <= have, f"RecordingHooks lacks {sorted(wanted - have)}"


async def test_a_slow_caller_lookup_never_holds_the_greeting_back(
        virtual_time: VirtualTime) -> None:
    brain = _Brain()
    rig = _Rig(brain, RecordingHooks(lookup_s=3600, caller_name="Maria"))
    await rig.call.start_brain()
    # The lookup was given its budget, not a second more, and the greeting went on
    # without the name it would have found.
    assert virtual_time.elapsed == pytest.approx(GREETING_LOOKUP_BUDGET_S)
    assert brain.started_with == ""
    assert rig.hooks.events == [("before_greeting", rig.call.call_sid)]


async def test_a_quick_lookup_names_the_caller_before_the_greeting(
        virtual_time: VirtualTime) -> None:
    brain = _Brain()
    rig = _Rig(brain, RecordingHooks(lookup_s=0.05, caller_name="Maria"))
    await rig.call.start_brain()
    assert virtual_time.elapsed == pytest.approx(0.05)
    assert brain.started_with == "Maria"


async def test_a_brain_that_cannot_start_is_replaced_once_by_the_fallback(
        virtual_time: VirtualTime) -> None:
    broken = _Brain(fail_start=True)
    rig = _Rig(broken)
    await rig.call.start_brain()
    assert rig.call.fell_back and rig.hooks.fallbacks == 1
    fallback = rig.call.brain
    assert isinstance(fallback, _Brain) and fallback is not broken
    await asyncio.sleep(1)  # the child tasks: close the old brain, start the new one
    assert broken.closed and fallback.started_with == ""
    assert rig.latency.of("openai").start.values() == []  # a failed start is not a sample
    await rig.call.close("test over")


def test_brain_requests_reach_the_hooks() -> None:
    rig = _Rig(_Brain())
    rig.call.transfer_call("+14155550123")
    rig.call.caller_named("Maria")
    rig.call.transcript("agent", "Hello.")
    assert rig.hooks.events == [("transfer", "+14155550123"), ("caller_named", "Maria"),
                                ("transcript", ("agent", "Hello."))]
    assert rig.call.context.caller_name == "Maria"
    assert rig.call.transcript_tail == [("agent", "Hello.")]
