"""Choosing the business per call: by number called, by name, else the default."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.business.registry import (
    BusinessRegistry,
    end_call_message,
    greeting,
    no_voice_message,
    owner_missed_call_text,
)
from agents.business.settings import BusinessSettings
from agents.memory import Known, NewCaller, Unknown


def _b(name: str, *numbers: str, **extra: object) -> BusinessSettings:
    return msgspec.convert({"name": name, "numbers": list(numbers), **extra}, BusinessSettings)


PLUMBER = _b("Joe's Plumbing", "+14155550100", plan="PRO", greeting="Joe's Plumbing, hi.")
CLINIC = _b("Bay Clinic", "(415) 555-0111", industry="medical", plan="BASIC")


def test_called_number_picks_the_business_in_any_format() -> None:
    reg = BusinessRegistry([PLUMBER, CLINIC])
    assert reg.for_number("+14155550100") is PLUMBER
    assert reg.for_number("+14155550111") is CLINIC
    assert reg.for_number("415-555-0111") is CLINIC


def test_unknown_or_garbage_number_gets_the_default() -> None:
    reg = BusinessRegistry([PLUMBER, CLINIC])
    assert reg.default is PLUMBER  # the first, none being marked
    assert reg.for_number("+14155559999") is PLUMBER
    assert reg.for_number("not a number") is PLUMBER
    assert reg.for_number("") is PLUMBER
    marked = _b("Clinic", "+14155550112", default=True)
    reg = BusinessRegistry([PLUMBER, marked])
    assert reg.for_number("+14155559999") is marked


def test_outbound_work_names_its_business() -> None:
    reg = BusinessRegistry([PLUMBER, CLINIC])
    assert reg.by_name("Bay Clinic") is CLINIC
    assert reg.by_name("Nobody") is PLUMBER
    assert reg.by_name(None) is PLUMBER


def test_empty_registry_answers_none() -> None:
    reg = BusinessRegistry([])
    assert reg.for_number("+14155550100") is None and reg.by_name("x") is None


@given(st.text(max_size=40))
def test_any_called_string_resolves_without_raising(called: str) -> None:
    assert BusinessRegistry([PLUMBER, CLINIC]).for_number(called) in (PLUMBER, CLINIC)


def test_greetings_and_messages() -> None:
    assert greeting(PLUMBER, Known("Ana"), "x") == "Welcome back, Ana. Joe's Plumbing, hi."
    assert greeting(PLUMBER, NewCaller(), "x") == "Joe's Plumbing, hi."
    assert greeting(CLINIC, Unknown(), "fallback") == "fallback"
    free = _b("Free Co", plan="FREE", end_call_message="Bye.")
    assert end_call_message(free).startswith("Bye. ") and len(end_call_message(free)) > 5
    assert end_call_message(PLUMBER) == PLUMBER.end_call_message
    assert "Bay Clinic" in no_voice_message(CLINIC)
    assert "+14155552671" in owner_missed_call_text(CLINIC, "+14155552671")


@pytest.mark.parametrize("plan", ["FREE", "BASIC"])
def test_only_pro_has_voice(plan: str) -> None:
    assert not _b("x", plan=plan).voice_enabled
