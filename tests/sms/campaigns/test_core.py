"""The planner as a pure function: properties over arbitrary lead states and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agents.compliance.engine import CompliancePolicy
from sms.campaigns import core
from sms.campaigns.model import load_campaign_text
from store.campaign_models import Enrollment, TouchSend
from store.models import LEAD_STATUSES, Lead
from tests.sms.campaigns.conftest import CAMPAIGN_TOML

CAMPAIGN = load_campaign_text(CAMPAIGN_TOML)
WINDOWED = load_campaign_text(CAMPAIGN_TOML.replace(
    'stop_on = ["reply", "opt_out", "handoff", "booked"]',
    'window = "10:00-17:00"\ndays = ["mon", "tue", "wed", "thu", "fri"]'))
T0 = datetime(2026, 6, 8, 12, 0, tzinfo=UTC)
ID = core.Identity("Acme", "https://b.example")


def lead(**kw: object) -> Lead:
    base: dict[str, object] = dict(
        id=1, phone="+12125550101", first_name="Ann", last_name=None, email=None, state="NY",
        status="contacted", source=None, attributes={}, human_takeover=False, opted_out=False,
        dnc=False, caller_id=None, created_at=T0, updated_at=T0, last_inbound_at=None,
        last_outbound_at=None)
    base.update(kw)
    return Lead(**base)  # type: ignore[arg-type]


def enrollment(touch: int) -> Enrollment:
    return Enrollment(7, 1, "+12125550101", "active", None, touch, "sms", T0, T0, None, None)


@given(status=st.sampled_from(LEAD_STATUSES), opted=st.booleans(), dnc=st.booleans(),
       takeover=st.booleans(), replied=st.booleans(), touch=st.integers(1, 3),
       sent_ago_h=st.integers(0, 400))
def test_never_sends_to_a_stopped_lead_or_before_the_delay(
        status: str, opted: bool, dnc: bool, takeover: bool, replied: bool, touch: int,
        sent_ago_h: int) -> None:
    now = T0 + timedelta(days=20)
    prev = TouchSend("sent", now - timedelta(hours=sent_ago_h)) if touch > 1 else None
    facts = core.LeadFacts(lead(status=status, opted_out=opted, dnc=dnc,
                                human_takeover=takeover), now if replied else None, prev)
    plan = core.plan(CAMPAIGN, enrollment(touch), facts, now, ID)
    if isinstance(plan, core.Send):
        assert not (opted or dnc or takeover or replied)
        assert status not in ("booked", "wrong_number")
        if prev is not None:
            assert now - prev.sent_at >= CAMPAIGN.touches[touch - 1].delay_td  # type: ignore[operator]
        assert "Ann" in plan.body
    if opted:
        assert plan == core.Stop("opt_out")


def test_previous_touch_still_in_the_outbox_waits() -> None:
    facts = core.LeadFacts(lead(), None, TouchSend("pending", None))
    plan = core.plan(CAMPAIGN, enrollment(2), facts, T0, ID)
    assert isinstance(plan, core.Wait) and plan.why == "previous_touch_pending"


@given(st.integers(0, 14 * 24 * 4))
def test_campaign_window_is_weekday_local_and_inside_the_law(quarter_hours: int) -> None:
    from zoneinfo import ZoneInfo

    now = T0 + timedelta(minutes=15 * quarter_hours)
    policy = core.campaign_policy(CompliancePolicy(), WINDOWED)
    opens = core.window_open_at(now, ["America/New_York"], ["NY"], WINDOWED, policy)
    at = now if opens is None else opens
    local = at.astimezone(ZoneInfo("America/New_York"))
    assert local.weekday() < 5 and 10 <= local.hour < 17
    assert opens is None or opens > now
