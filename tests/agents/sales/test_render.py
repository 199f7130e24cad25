"""The script as realtime instructions: stages, objections, forbidden claims, disclosure."""

from __future__ import annotations

from agents.brain import CallContext
from agents.realtime.protocol import SessionConfig
from agents.sales.follower import SalesFollower
from agents.sales.render import for_sales, opening_text, render_script
from agents.sales.script import builtin_script

ADA = {"firstName": "Ada", "practiceName": "Bay Dental", "state": "CA"}


def test_rendering_holds_the_whole_script_for_the_contact() -> None:
    script = builtin_script()
    text = render_script(script, ADA)
    for claim in script.forbidden:
        assert claim in text
    assert "licensed insurance agent" in text and "policy advice" in text
    assert "AI disclosure" in text and "AI assistant calling on behalf of Practice Benchmark" \
        in text
    for objection in script.objections:
        assert f"({objection.key})" in text
    assert "food-delivery credit" in text and "pharmaceutical" in text
    assert "Bay Dental" in text and "{" not in text
    assert text.index("Greeting") < text.index("Qualify") < text.index("Close")
    assert "When to schedule" in text


def test_rendering_without_contact_fields() -> None:
    text = render_script(builtin_script(), {})
    assert "{" not in text and "None" not in text and "your practice" in text


def test_for_sales_sets_instructions_and_the_opening() -> None:
    follower = SalesFollower(builtin_script(), ADA)
    base = SessionConfig(instructions="You are a phone agent.", greeting="Hello.")
    config = for_sales(base, follower)
    assert config.instructions.startswith("You are a phone agent.\n\nThis is a sales call")
    assert config.greeting == opening_text(builtin_script(), ADA)
    assert config.greeting.startswith("Hi Ada, this is Alex")
    assert follower.stage == "greeting"  # rendering does not move the follower


def test_call_context_carries_the_follower() -> None:
    context = CallContext(call_sid="CA1", direction="outbound")
    assert context.sales is None
    context.sales = SalesFollower(builtin_script(), ADA)
    assert context.sales.opening()
