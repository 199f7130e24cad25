"""The coach's sans-I/O core: schedule, bounded cost, prompt, strict parsing, objectives."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.coach.core import (
    COACH_PROMPT_MARK,
    BadGuidance,
    CoachCore,
    CoachStats,
    parse_guidance,
)
from agents.coach.settings import CoachSettings
from tests.fakes.clock import ManualClock

OBJECTIVES = ["Introduce yourself", "Learn the current carrier", "Propose two meeting times"]


def make(**kw: object) -> tuple[CoachCore, ManualClock]:
    clock = ManualClock(1000.0)
    core = CoachCore(objectives=OBJECTIVES, script_text="Pitch the free benchmark.",
                     clock=clock, stats=CoachStats(), **kw)  # type: ignore[arg-type]
    return core, clock


def guidance(**fields: object) -> str:
    body = {"objectives_done": [], "next_step": "Ask about the carrier",
            "say_next": "Who is your carrier today?", "warning": ""}
    body.update(fields)
    return msgspec.json.encode(body).decode()


def test_a_request_is_due_every_interval_only_when_something_new_was_said() -> None:
    core, clock = make(interval_s=15.0)
    core.heard("agent", "Hi, this is Alex from Acme.")
    clock.advance(14.9)
    assert not core.due()
    clock.advance(0.1)
    assert core.due()
    core.request()
    assert core.reply(guidance()) is not None
    # Nothing said since: the next slots cost nothing.
    clock.advance(15.0)
    assert not core.due()
    clock.advance(15.0)
    assert not core.due()
    assert core.counts == {"requests": 1, "guidance": 1, "skipped_idle": 2}
    core.heard("caller", "We use Delta Dental.")
    clock.advance(15.0)
    assert core.due()
    assert core.stats.requests == 1  # `due` never counts a request; `request` does
    core.request()
    assert core.stats.requests == 2


def test_a_silent_call_never_asks() -> None:
    core, clock = make(interval_s=15.0)
    for _ in range(10):
        clock.advance(15.0)
        assert not core.due()
    assert core.counts == {"skipped_idle": 10}
    core.heard("caller", "   ")  # an empty transcript is nothing new
    clock.advance(15.0)
    assert not core.due()


def test_the_schedule_does_not_catch_up_after_a_slow_request() -> None:
    core, clock = make(interval_s=15.0)
    core.heard("caller", "hello")
    clock.advance(15.0)
    assert core.due()
    core.request()
    clock.advance(40.0)  # the answer took 40 s
    core.reply(guidance())
    core.heard("caller", "still there?")
    assert core.due()  # one slot, not two
    assert core.next_due_at == clock.now + 15.0
    core.request()
    assert not core.due()


def test_a_slot_while_a_request_is_out_is_skipped() -> None:
    core, clock = make(interval_s=15.0)
    core.heard("caller", "hello")
    clock.advance(15.0)
    assert core.due()
    core.request()
    core.heard("caller", "more")
    clock.advance(15.0)
    assert not core.due()
    assert core.counts["skipped_busy"] == 1


def test_the_request_carries_the_prompt_script_checklist_and_transcript() -> None:
    core, clock = make()
    core.heard("agent", "Hi, this is Alex.")
    clock.advance(3.0)
    core.heard("caller", "Who?")
    system, user = core.request()
    assert system["role"] == "system" and system["content"].startswith(COACH_PROMPT_MARK)
    for key in ("objectives_done", "next_step", "say_next", "warning"):
        assert key in system["content"]
    assert user["role"] == "user"
    text = user["content"]
    assert "Pitch the free benchmark." in text
    assert "- [ ] Introduce yourself" in text
    assert "[0s] agent: Hi, this is Alex.\n[3s] caller: Who?" in text
    core.reply(guidance(objectives_done=["introduce yourself."]))
    _, user = core.request()
    assert "- [x] Introduce yourself" in user["content"]
    assert "- [ ] Learn the current carrier" in user["content"]


def test_the_transcript_sent_is_bounded_newest_kept() -> None:
    core, _ = make(max_transcript_chars=600)
    for i in range(200):
        core.heard("caller", f"turn number {i} " + "x" * 40)
    _, user = core.request()
    text = user["content"]
    assert "turn number 199" in text and "turn number 0 " not in text
    assert "[earlier turns left out]" in text
    transcript = text.split("Transcript so far")[1]
    assert len(transcript) < 600 + 200


def test_objectives_done_are_matched_to_the_checklist_and_kept_with_when() -> None:
    core, clock = make()
    core.heard("caller", "hi")
    core.request()
    clock.advance(20.0)
    note = core.reply(guidance(objectives_done=["Introduce Yourself", "Sell a yacht"]))
    assert note is not None
    assert core.done == {"Introduce yourself": 20.0}
    assert core.counts["unknown_objective"] == 1
    # Done stays done, with its first time.
    clock.advance(20.0)
    core.reply(guidance(objectives_done=["Introduce yourself"]))
    summary = core.summary()
    assert summary["done"] == 1 and summary["total"] == 3
    assert summary["objectives"][0] == {"objective": "Introduce yourself", "done": True,
                                        "at_s": 20.0}
    assert summary["objectives"][1]["done"] is False


def test_the_note_is_private_guidance_with_the_open_objectives() -> None:
    core, _ = make()
    note = core.reply(guidance(objectives_done=["Introduce yourself"],
                               warning="Do not promise a price"))
    assert note is not None
    assert note.startswith("[Coach guidance, private")
    assert "Next step: Ask about the carrier" in note
    assert 'You could say: "Who is your carrier today?"' in note
    assert "Warning: Do not promise a price" in note
    assert "Next step: Ask about the carrier. You could say" in note
    assert note.endswith(
        "Objectives still open: Learn the current carrier; Propose two meeting times.")
    assert "Introduce yourself" not in note.split("still open")[1]


def test_guidance_that_says_nothing_is_not_sent() -> None:
    core, _ = make()
    assert core.reply(guidance(next_step="", say_next=" ", warning=None)) is None
    assert core.counts == {"skipped_nothing_to_say": 1}


@pytest.mark.parametrize(("text", "kind"), [
    ("", "empty"),
    ("Sure! Here is my advice: ask about the carrier.", "not_json"),
    ('{"next_step": "x", "say_next": "y", "warning": ""}', "invalid"),  # a key missing
    ('{"objectives_done": "all", "next_step": "x", "say_next": "y", "warning": ""}', "invalid"),
    ('{"objectives_done": [1], "next_step": "x", "say_next": "y", "warning": ""}', "invalid"),
    ('[1, 2]', "invalid"),
    ('{"objectives_done": [], "next_step": "' + "x" * 2000 + '", "say_next": "", '
     '"warning": ""}', "invalid"),
])
def test_bad_replies_are_skipped_and_counted(text: str, kind: str) -> None:
    core, _ = make()
    core.request()
    assert core.reply(text) is None
    assert core.counts[f"skipped_{kind}"] == 1
    assert core.stats.skipped == {kind: 1}
    assert core.done == {}
    with pytest.raises(BadGuidance):
        parse_guidance(text)


def test_a_json_fence_and_extra_keys_are_tolerated() -> None:
    g = parse_guidance("```json\n" + guidance(confidence=0.9) + "\n```")
    assert g.next_step == "Ask about the carrier"


@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_reply_is_a_note_or_a_counted_skip_never_an_error(text: str) -> None:
    core, _ = make()
    core.request()
    note = core.reply(text)
    assert note is None or note.startswith("[Coach guidance")
    outcomes = [k for k in core.counts if k == "guidance" or k.startswith("skipped_")]
    assert core.counts["requests"] == 1 and len(outcomes) == 1  # one outcome, counted once


@given(st.dictionaries(st.sampled_from(["objectives_done", "next_step", "say_next",
                                        "warning", "other"]),
                       st.none() | st.integers() | st.text(max_size=20)
                       | st.lists(st.text(max_size=20) | st.integers(), max_size=3)))
def test_any_json_object_is_parsed_or_refused(body: dict[str, object]) -> None:
    core, _ = make()
    note = core.reply(msgspec.json.encode(body).decode())
    assert note is None or isinstance(note, str)
    assert set(core.done) <= set(OBJECTIVES)


def test_settings_are_checked_at_load() -> None:
    assert CoachSettings().enabled is False and CoachSettings().interval_s == 15.0
    with pytest.raises(ValueError, match="interval_s"):
        CoachSettings(interval_s=0)
    with pytest.raises(ValueError, match="timeout_s"):
        CoachSettings(timeout_s=0)
    with pytest.raises(ValueError, match="base_url"):
        CoachSettings(enabled=True, base_url="ws://x")
    with pytest.raises(msgspec.ValidationError, match="intervl_s"):
        msgspec.convert({"intervl_s": 3}, CoachSettings)
