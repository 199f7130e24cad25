"""Consent classification: every real-looking revocation is caught, no benign text is."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.compliance.consent import MAX_CHARS, classify_consent, normalize, tables

REVOCATIONS = [
    # per-se keywords, alone, with casing / punctuation / emoji / politeness / repetition
    "STOP", "Stop", "stop", " STOP. ", "stop!!", "STOP 🛑", "🛑 stop 🛑", "Stop please",
    "please stop", "stop stop", "STOP STOP STOP", "Stop.", "stop pls", "plz stop", "STOPALL",
    "stop all", "UNSUBSCRIBE", "Unsubscribe.", "unsubscribe please", "END", "End.", "QUIT",
    "quit!", "CANCEL", "Cancel please", "REVOKE", "OPTOUT", "opt out", "Opt-Out", "opt out!",
    "OPT OUT PLEASE", "ok stop", "stop now", "Stop immediately", "stop thank you",
    "\tStop\n", "Ｓｔｏｐ", "stop…", "STOP!!! 😡", "Stop, thanks", "unsub",
    # a keyword as its own clause
    "Wrong number, stop", "Not interested. Stop.", "Stop. Who is this?",
    "Who is this?? STOP", "no thanks - stop", "Unsubscribe. Not interested",
    # reasonable-means phrases
    "take me off your list", "Take me off your list please", "Please take me off the list",
    "take my number off your list", "Take us off your mailing list",
    "remove me", "Remove me from your list", "pls remove me", "remove my number",
    "Remove this number from your database", "don't text me again", "dont text me again",
    "Do not text me again.", "do not contact me", "DO NOT CONTACT ME", "Don't ever call me",
    "never text me again", "stop texting me", "Stop texting me please", "stop messaging me",
    "Stop messaging this number", "stop calling me", "stop f***ing texting me",
    "stop fucking texting me", "quit texting me", "quit calling me", "stop sending me these",
    "stop sending me texts", "stop the texts", "stop these messages", "end these messages",
    "cancel the texts", "leave me alone", "Leave me the hell alone", "no more texts",
    "No more text messages please", "no more calls", "unsubscribe me", "I want to opt out",
    "i want to unsubscribe", "how do I unsubscribe from these?", "opt me out", "lose my number",
    "Lose my number.", "delete my number", "Delete my info", "forget my number",
    "I don't want to receive texts", "I dont want any more texts from you",
    "We no longer wish to be contacted", "i do not want to receive these messages",
    "I never signed up for this", "didnt sign up for this stop", "I never gave you permission",
    "I revoke my consent", "I withdraw my consent", "I told you not to text me",
    "i asked u not to call me", "Put me on your do not call list", "add my number to DNC",
    "wrong number please remove", "Wrong person, please stop", "Stop contacting me",
    "stop all contact", "go away", "Go away!", "F off", "stop it", "Stop this", "Stop it!!",
    "I'm sick of these texts", "done with your messages", "no more contact please",
    "Stop bothering me", "quit spamming me", "cease contacting me", "please stop contacting me",
    "u need to stop texting me", "STOP TEXTING ME!!!", "dont msg me", "Don't message me anymore",
    "do not call me again", "if you dont stop texting me I will report you",
    "Hey stop texting this number", "im not interested, take me off the list",
    "not interested remove me", "Please unsubscribe me from all messages",
    "I don’t want these texts", "don’t text me", "Don’t contact me ever again",
    "Cancel my subscription", "please remove from your list", "Remove from list",
    "I'm on the do not call list", "this number is registered on the national DNC registry",
    "Unsubcribe", "stop txt", "stop msg pls", "Not interested. Please don't contact me again",
    "I'm good, please stop", "no longer interested, unsubscribe",
    "remove me from your list", "take me off the texting list", "remove me from the database",
    "Delete me from your system", "take me off this thread",
]

BENIGN = [
    "can you stop by tomorrow", "Can you stop by tomorrow at 3?",
    "I need to cancel Friday's appointment, can we reschedule?", "don't stop, this is great",
    "what time do you end today?", "the leak won't stop", "is the offer still valid or did it end?",
    "Quit my job last week, need a new plan", "Yes thank you", "yes please book it",
    "The water won't stop running", "My toilet won't stop flushing",
    "Can the tech stop by before noon?", "Please don't hesitate to call me",
    "don't forget to text me the address", "Don't call me before 9, I work nights",
    "Dont text me at work, email instead", "don't call me, text me", "Did you lose my number?",
    "why did you stop texting me?", "I can't stop it from leaking",
    "Is there a bus stop near your office?", "What's the end date of the promo?",
    "The pain won't go away, need an appointment", "At the end of the day I want the cheaper one",
    "Can I cancel anytime?", "We might need to cancel if it rains",
    "I'll stop in after work", "Stop sign at the corner, turn left there",
    "Please call me at 5", "Text me when the tech is on the way", "I'll end up calling you",
    "Will you stop by the house?", "How much to end the contract early?",
    "Quite interested actually", "Start date is Monday?", "When can you start?",
    "Info on pricing would be nice", "Can you help me with my AC?", "help, my basement flooded",
    "I want to sign up", "Sign me up!", "Send me more info please", "Call me anytime",
    "No more than $200 please", "I'd like no more delays", "My phone was on do not disturb",
    "Yes, Tuesday works", "ok sounds good", "Thanks!", "Who is this?", "lol", "👍",
    "Can we end the call early tomorrow?", "Can you remind me tomorrow?", "Please text me back",
    "I stopped by yesterday but you were closed", "The noise stopped, thanks",
    "Cancelled my other contractor, want to go with you", "I quit smoking, so no smoke smell",
    "Don't worry about it", "don't text me before 8am please", "don't call me until Monday",
    "Never mind, I found it", "Please remove the old filter too", "Can you remove the stump?",
    "take me to the appointment page", "Stop by anytime this week",
    "I'm done with the paperwork", "Tired of my old furnace, need a new one",
    "the end of the pipe is cracked", "Can you stop the drip in the sink?",
    "i dont want to miss your calls", "what time do you stop working today",
    "Did the offer end?", "Unsure, let me think", "Yesterday was better",
    "I want to cancel my maintenance subscription and get a one-time visit instead",
    "Can you remove the list of charges from the invoice?", "Is my number on the list?",
    "I am in the office until 5",
    "Can you remove me from Friday's slot and put me on Monday?",
    "Please take me off the waitlist, I found a time", "remove me from the 3pm appointment",
    "Delete me from tomorrow's schedule please", "take us off the Tuesday route",
]


@pytest.mark.parametrize("text", REVOCATIONS)
def test_every_revocation_is_caught(text: str) -> None:
    assert classify_consent(text) == "opt_out"


@pytest.mark.parametrize("text", BENIGN)
def test_benign_text_is_never_an_opt_out(text: str) -> None:
    assert classify_consent(text) != "opt_out"


def test_tables_are_big_enough() -> None:
    assert len(set(REVOCATIONS)) >= 80
    assert len(set(BENIGN)) >= 60


@pytest.mark.parametrize(
    ("text", "kind"),
    [("START", "opt_in"), ("start", "opt_in"), ("Yes", "opt_in"), ("YES!", "opt_in"),
     ("unstop", "opt_in"), ("UNSTOP.", "opt_in"), ("HELP", "help"), ("help?", "help"),
     ("Info", "help"), ("INFO please", "help"), ("help me please", None),
     ("start please", None), ("yes stop", "opt_out"), ("STOP HELP", "opt_out"),
     ("", None), ("   ", None), ("🙂", None), ("?!?", None)],
)
def test_opt_in_and_help_keywords(text: str, kind: str | None) -> None:
    assert classify_consent(text) == kind


def test_normalize_folds_case_apostrophes_and_punctuation() -> None:
    assert normalize("  Don’t   TEXT me!!! 🛑 ") == "dont text me"
    assert normalize("Opt-Out") == "opt out"


def test_non_string_and_huge_input_never_crash() -> None:
    assert classify_consent(None) is None  # type: ignore[arg-type]
    assert classify_consent("a " * 100_000) is None
    # Past the inspected prefix nothing counts, so the work stays bounded.
    assert classify_consent("x" * MAX_CHARS + " stop texting me") is None


def test_every_table_regex_compiles_and_is_exercised() -> None:
    phrases = tables().phrases
    hit = [False] * len(phrases)
    for text in REVOCATIONS:
        norm = normalize(text)
        for i, phrase in enumerate(phrases):
            if phrase.pattern.search(norm):
                hit[i] = True
    assert all(hit), [p.pattern.pattern for p, h in zip(phrases, hit, strict=True) if not h]


_POLITE = st.lists(st.sampled_from(["please", "pls", "plz", "now", "ok", "thanks", "just",
                                    "thank you", "asap"]), max_size=3)
_PUNCT = st.text(alphabet=" .,!?…🛑😡🙏\t", max_size=4)
_KEYWORD = st.sampled_from(["stop", "STOP", "Stop", "unsubscribe", "END", "quit", "Cancel",
                            "revoke", "optout", "opt out", "Opt-Out", "stopall", "UNSUB"])


@settings(max_examples=300, deadline=None)
@given(before=_POLITE, after=_POLITE, kw=_KEYWORD, p1=_PUNCT, p2=_PUNCT, p3=_PUNCT)
def test_keyword_with_politeness_is_always_opt_out(
    before: list[str], after: list[str], kw: str, p1: str, p2: str, p3: str
) -> None:
    text = p1 + " ".join(before) + p2 + " " + kw + " " + p3 + " ".join(after) + p3
    assert classify_consent(text) == "opt_out"


_SUBJECT = st.sampled_from(["I", "We", "My wife", "The tech", "He", "She", "They", "You"])
_TIME = st.sampled_from(["tomorrow", "on Friday", "next week", "at 3pm", "today", "after lunch",
                         "this morning", "before noon", "around 5"])
_THING = st.sampled_from(["appointment", "order", "visit", "inspection", "estimate", "meeting",
                          "booking", "reservation", "service call", "plan"])
_BENIGN_TEMPLATES = [
    "Can you stop by {time}?", "{subj} can stop by {time}", "{subj} need to cancel the {thing}",
    "I have to cancel my {thing} {time}, can we reschedule?", "What time does the {thing} end?",
    "Did the {thing} end {time}?", "The leak won't stop since {time}",
    "{subj} had to cancel {time}", "The {thing} will end {time}", "{subj} will stop by {time}",
    "Please cancel the {thing} and book a new one {time}", "When does your {thing} end {time}?",
    "{subj} can't stop laughing about the {thing}", "Is the {thing} at the end of the street?",
    "{subj} quit the old company, need an {thing} {time}", "Don't stop the {thing} {time}",
    "Should {subj} cancel or keep the {thing}?", "At the end of the {thing} please call me",
]


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(_BENIGN_TEMPLATES), subj=_SUBJECT, time=_TIME, thing=_THING,
       shout=st.booleans())
def test_benign_sentences_with_keyword_words_are_never_opt_out(
    template: str, subj: str, time: str, thing: str, shout: bool
) -> None:
    text = template.format(subj=subj, time=time, thing=thing)
    if shout:
        text = text.upper()
    assert classify_consent(text) != "opt_out"


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_is_classified_without_error(text: str) -> None:
    assert classify_consent(text) in (None, "opt_out", "opt_in", "help")
