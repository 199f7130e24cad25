"""The campaign file format: what loads, and bad files named by key and touch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.campaigns.model import (
    CampaignError,
    MissingVariable,
    load_campaign_text,
    parse_delay,
    pick_variant,
    render,
)
from tests.sms.campaigns.conftest import CAMPAIGN_TOML

EMAIL_TOUCH = """
[[touches]]
channel = "email"
delay = "2d"
subject = "A quick follow-up"
template = "Hi {first_name}"
"""


def test_contract_example_loads() -> None:
    c = load_campaign_text(CAMPAIGN_TOML)
    assert c.name == "reactivation" and len(c.touches) == 3
    assert c.stop_on == ("reply", "opt_out", "handoff", "booked")
    assert c.touches[1].choices()[1][0].startswith("Hey")


def test_defaults_and_email_touch() -> None:
    c = load_campaign_text('name = "x"\nwindow = "10:00-17:00"\n' + EMAIL_TOUCH)
    assert c.business == "default" and c.stop_on == ("reply", "opt_out", "handoff", "booked")
    assert c.window_minutes() == (600, 1020)


@pytest.mark.parametrize(("text", "needle"), [
    ('name = "x"\n[[touches]]\nchanel = "sms"\ndelay = "0d"\ntemplate = "a"',
     "touch 1"),
    ('name = "x"\n[[touches]]\nchannel = "fax"\ndelay = "0d"\ntemplate = "a"', "touch 1"),
    ('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\ntemplate = "a"\n'
     '[[touches]]\nchannel = "sms"\ndelay = "1d"\ntemplate = "Hi {fist_name}"',
     "touch 2: template: template: unknown variable {fist_name}"),
    ('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "10d"\ntemplate = "a"\n'
     '[[touches]]\nchannel = "sms"\ndelay = "12d"\ntemplate = "b"', "touch 2: delay"),
    ('name = "x"\nwindow = "07:00-17:00"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\n'
     'template = "a"', "window"),
    ('name = "x"\n[[touches]]\nchannel = "email"\ndelay = "0d"\ntemplate = "a"',
     "touch 1: subject"),
    ('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "soon"\ntemplate = "a"',
     "touch 1: delay"),
    ('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\ntemplate = "{a.__class__}"',
     "plain {name}"),
    ('name = "x"\nstop_on = ["reply"]\n[[touches]]\nchannel = "sms"\ndelay = "0d"\n'
     'template = "a"', "opt_out"),
    ('name = "x"\n[[touches]]\nchannel = "sms"\ndelay = "0d"\ntemplate = "a"\n'
     'variants = [{ template = "{nope}" }]', "touch 1: variants[0]"),
    ('name = "x"\ntouches = [', "not valid TOML"),
    ('name = "x"\ntouches = []', "touches"),
])
def test_bad_files_name_the_key(text: str, needle: str) -> None:
    with pytest.raises(CampaignError) as err:
        load_campaign_text(text)
    assert needle in str(err.value)


def test_declared_attributes_render_and_missing_ones_are_named() -> None:
    c = load_campaign_text('name = "x"\nattributes = ["vehicle"]\n[[touches]]\n'
                           'channel = "sms"\ndelay = "0d"\ntemplate = "Your {vehicle}"')
    assert render(c.touches[0].template, {"vehicle": "Civic"}) == "Your Civic"
    with pytest.raises(MissingVariable):
        render(c.touches[0].template, {"vehicle": None})


def test_delays() -> None:
    assert parse_delay("36h").total_seconds() == 36 * 3600
    assert parse_delay("2d").days == 2 and parse_delay("90m").seconds == 5400


@given(st.text(max_size=300))
def test_any_text_is_a_campaign_or_a_campaign_error(text: str) -> None:
    try:
        load_campaign_text(text)
    except CampaignError:
        pass


@given(st.integers(1, 10**9))
def test_variant_pick_is_stable_and_in_range(eid: int) -> None:
    c = load_campaign_text(CAMPAIGN_TOML)
    v = pick_variant(c.touches[1], eid, 2)
    assert v in (0, 1) and v == pick_variant(c.touches[1], eid, 2)


def test_variant_split_follows_weights() -> None:
    c = load_campaign_text(CAMPAIGN_TOML)
    share = sum(pick_variant(c.touches[1], i, 2) for i in range(2000)) / 2000
    assert 0.45 < share < 0.55
