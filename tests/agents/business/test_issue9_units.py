"""Issue 9 pieces without I/O: the last issue in caller memory, the FREE branding line,
the alert's email and its measured 5 s bound, and bad input on a call's flow."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import memory
from agents.business import alert as alert_mod
from agents.business.flow import CallFlow, issue_of, rank
from agents.business.registry import greeting, no_voice_message
from agents.business.settings import BusinessSettings
from agents.memory import Known, NewCaller, Unknown, recall
from agents.nlu.triage import PRIORITIES
from tests.agents.business.test_alert import Notifier, _alerts, _business, _gas_flow
from tests.agents.business.test_flow import _plumber
from tests.helpers import eventually

# --- the last issue in caller memory -----------------------------------------------------


def test_a_known_caller_carries_the_last_issue_into_every_greeting() -> None:
    known = recall("Ana  Lopez", "a water leak.")
    assert known == Known("Ana Lopez", "a water leak")
    assert memory.greeting(known, "How can we help?") == (
        "Welcome back, Ana Lopez. Last time you called about a water leak. How can we help?")
    assert greeting(_plumber(greeting="Joe's Plumbing."), known, "x") == (
        "Welcome back, Ana Lopez. Last time you called about a water leak. Joe's Plumbing.")
    assert memory.known_fact(known).endswith("Last time they called about a water leak.")
    assert "ask whether this call is about the same thing" in memory.instructions_note(known)
    # Without an issue nothing changes.
    assert memory.greeting(Known("Ana"), "Hi.") == "Welcome back, Ana. Hi."
    assert memory.known_fact(Known("Ana")) == "The caller's name is Ana."


@pytest.mark.parametrize("caller_name", ["", None, "   "])
def test_no_name_means_no_issue_is_said(caller_name: str | None) -> None:
    """A number we cannot put a name to may be someone else on the same line."""
    mem = recall(caller_name, "a gas smell")
    assert isinstance(mem, NewCaller | Unknown)
    assert "gas" not in memory.greeting(mem, "Hello.", "Your name?")
    assert memory.known_fact(mem) == "" and "gas" not in memory.instructions_note(mem)


@given(st.text(max_size=2_000))
def test_any_stored_issue_is_said_back_short_and_on_one_line(text: str) -> None:
    mem = recall("Ana", text)
    assert isinstance(mem, Known)
    assert len(mem.last_issue) <= memory.MAX_ISSUE_CHARS
    assert "\n" not in mem.last_issue and "\r" not in mem.last_issue
    said = memory.greeting(mem, "Hi.")
    assert said.startswith("Welcome back, Ana.") and said.endswith("Hi.")


def test_the_issue_is_the_category_in_words_else_the_callers_words() -> None:
    flow = CallFlow(_plumber(), caller_number="+14155552671")
    assert flow.issue() == ""
    flow.caller_turn("A pipe burst in the basement, water everywhere")
    assert flow.issue() == "a water leak"
    assert issue_of("gas_leak", "") == "a gas smell"
    assert issue_of("no_heat", "") == "having no heat"
    assert issue_of("", "my  sink\nis slow") == "my sink is slow"
    assert issue_of("other", "the gate squeaks") == "the gate squeaks"


# --- FREE plan: the branding line is in the only thing a caller hears ----------------------


def test_free_no_voice_message_carries_the_branding_line_basic_does_not() -> None:
    free = msgspec.convert({"name": "Kim's"}, BusinessSettings)
    basic = msgspec.convert({"name": "Kim's", "plan": "BASIC"}, BusinessSettings)
    assert no_voice_message(free).startswith("Thank you for calling Kim's.")
    assert no_voice_message(free).endswith("This call was answered by Leadline.")
    assert "Leadline" not in no_voice_message(basic)


# --- the owner alert: email after the text, the 5 s bound measured ------------------------


class MailingNotifier(Notifier):
    def __init__(self, place_delay_s: float = 0.0, mail_fails: bool = False) -> None:
        super().__init__()
        self.mails: list[tuple[str, str, str, str, str]] = []
        self.place_delay_s = place_delay_s
        self.mail_fails = mail_fails

    async def place_call(self, to: str, from_: str, twiml: str, alert_id: str,
                         ring_timeout_s: int) -> str:
        await asyncio.sleep(self.place_delay_s)
        return await super().place_call(to, from_, twiml, alert_id, ring_timeout_s)

    async def send_email(self, to: str, subject: str, body: str, origin: str,
                         file_under: str) -> str:
        if self.mail_fails:
            raise OSError("smtp down")
        self.mails.append((to, subject, body, origin, file_under))
        return "queued"


def _kinds(notifier: Notifier) -> list[str]:
    return [kind for kind, _ in notifier.records]


async def test_unacknowledged_alert_texts_then_emails_the_owner() -> None:
    notifier = MailingNotifier()
    alerts = _alerts(notifier, max_calls=2, outcome_wait_s=0.05)
    flow = CallFlow(_business(owner={"phone": "+14155550199", "email": "joe@x.example"}),
                    caller_number="+14155552671")
    flow.caller_turn("I smell gas in the kitchen at 12 Main Street")
    assert alerts.start("CA1", flow)
    await eventually(lambda: "owner_alert_email" in _kinds(notifier), "the email")
    assert _kinds(notifier) == ["owner_alert", "owner_alert", "owner_alert_text",
                                "owner_alert_email"]
    (to, subject, body, origin, file_under) = notifier.mails[0]
    assert (to, subject, origin, file_under) == (
        "joe@x.example", "URGENT call for Joe's Plumbing", "owner-alert-email:CA1",
        "+14155550199")
    assert "12 Main Street" in body and "+14155552671" in body and "gas" in body
    assert notifier.records[-1][1] == {"to": "joe@x.example", "outcome": "queued"}
    await alerts.aclose()


async def test_a_failed_email_is_recorded_and_no_email_without_an_address() -> None:
    notifier = MailingNotifier(mail_fails=True)
    alerts = _alerts(notifier, max_calls=1, outcome_wait_s=0.05)
    flow = CallFlow(_business(owner={"phone": "+14155550199", "email": "joe@x.example"}),
                    caller_number="+14155552671")
    flow.caller_turn("I smell gas")
    alerts.start("CA1", flow)
    await eventually(lambda: "owner_alert_email" in _kinds(notifier), "the email attempt")
    assert notifier.records[-1][1]["outcome"] == "failed: OSError"
    assert notifier.texts and alerts.failures == 1
    plain = MailingNotifier()
    alerts2 = _alerts(plain, max_calls=1, outcome_wait_s=0.05)
    alerts2.start("CA2", _gas_flow())
    await eventually(lambda: "owner_alert_text" in _kinds(plain), "the text")
    await asyncio.sleep(0.05)
    assert plain.mails == [] and "owner_alert_email" not in _kinds(plain)
    await alerts.aclose()
    await alerts2.aclose()


async def test_placement_delay_is_recorded_and_a_late_one_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    quick = MailingNotifier()
    alerts = _alerts(quick, max_calls=1, outcome_wait_s=0.05)
    alerts.start("CA1", _gas_flow())
    await eventually(lambda: "owner_alert" in _kinds(quick), "the attempt")
    placed = quick.records[0][1]["placed_after_s"]
    assert isinstance(placed, float) and 0 <= placed < alert_mod.PLACE_WITHIN_S
    assert alerts.late == 0
    # A carrier slower than the bound: still placed, but logged and counted.
    monkeypatch.setattr(alert_mod, "PLACE_WITHIN_S", 0.02)
    slow = MailingNotifier(place_delay_s=0.1)
    late = _alerts(slow, max_calls=1, outcome_wait_s=0.05)
    late.start("CA2", _gas_flow())
    await eventually(lambda: "owner_alert" in _kinds(slow), "the slow attempt")
    assert slow.records[0][1]["placed_after_s"] >= 0.1 and late.late == 1
    # Not placed at all: no delay to report.
    failing = MailingNotifier()
    failing.fail_next = True
    none = _alerts(failing, max_calls=1, outcome_wait_s=0.05)
    none.start("CA3", _gas_flow())
    await eventually(lambda: "owner_alert" in _kinds(failing), "the failed attempt")
    assert failing.records[0][1]["placed_after_s"] is None
    for a in (alerts, late, none):
        await a.aclose()


# --- bad input on a call's flow ------------------------------------------------------------

WORDS = ["fuck", "shit", "damn", "pipe", "burst", "agua", "por favor", "ayúdame", "hay",
         "fuga", "gas", "smell", "no", "not", "last year", "lol", "asdf", "🔥", "911",
         "we had", "flooding", "sótano", "leak", "¿", "qwerty", "\u200b", "ok", "?", "..."]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), max_size=8),
       st.lists(st.sampled_from([*PRIORITIES, "SUPER", "", "urgent", "LOW; DROP TABLE"]),
                max_size=4))
def test_profane_code_switched_nonsense_turns_and_bad_model_priorities(
        turns: list[str], model: list[str]) -> None:
    flow = CallFlow(_plumber(), caller_number="+14155552671")
    fired: list[str] = []
    flow.on_urgent.append(lambda f: fired.append(f.priority))
    lines = 0
    last = 0
    for i, text in enumerate(turns):
        out = flow.caller_turn(text)
        lines += out.safety_line is not None
        assert rank(flow.priority) >= last
        last = rank(flow.priority)
        if i < len(model):
            try:
                flow.set_priority(model[i], "x" * 1_000)
            except ValueError:
                assert model[i] not in PRIORITIES  # only a bad value is refused
            assert rank(flow.priority) >= last
            last = rank(flow.priority)
        flow.next_question()
    assert lines <= 1 and len(fired) <= 1
    assert len(flow.reason) <= 300 and len(flow.problem) <= 300
    assert fired == (["URGENT"] if flow.priority == "URGENT" else [])


class RejectingNotifier(MailingNotifier):
    """Twilio refuses the owner's number (21211 invalid To) for calls and texts alike."""

    async def place_call(self, to: str, from_: str, twiml: str, alert_id: str,
                         ring_timeout_s: int) -> str:
        raise ValueError("HTTP 400 error: Unable to create record: The 'To' number "
                         f"{to} is not a valid phone number. (21211)")

    async def send_text(self, to: str, body: str, origin: str) -> None:
        raise ValueError("refused: invalid")


async def test_an_owner_number_twilio_refuses_still_gets_the_email_and_all_is_recorded() -> None:
    notifier = RejectingNotifier()
    alerts = _alerts(notifier, max_calls=2, outcome_wait_s=0.05)
    flow = CallFlow(_business(owner={"phone": "+14155550199", "email": "joe@x.example"}),
                    caller_number="+14155552671")
    flow.caller_turn("I smell gas")
    alerts.start("CA1", flow)
    await eventually(lambda: "owner_alert_email" in _kinds(notifier), "the email")
    outcomes = [d.get("outcome") for _, d in notifier.records]
    assert [str(o)[:11] for o in outcomes[:2]] == ["not placed:", "not placed:"]
    assert "21211" in str(outcomes[0])
    assert outcomes[2:] == ["failed: ValueError", "queued"]
    assert len(notifier.mails) == 1 and alerts.failures == 3
    await alerts.aclose()
