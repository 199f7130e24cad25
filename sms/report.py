"""Campaign reporting: who was contacted, who replied, who is interested, who booked.

Every figure is counted from the durable records — campaign touches joined to their
messages, inbound messages, consent events and lead statuses — so the report agrees with
a recount from the messages table; nothing is kept in a counter that could drift.

Definitions:
- sent: campaign touches the provider accepted (an SMS with a Twilio SID, an email the
  SMTP server took); opt-out confirmations, HELP replies and conversation replies are not
  campaign touches and are never counted;
- contacted: leads with at least one sent touch;
- replied: contacted leads with any inbound message (any channel) after their first sent
  touch; the reply is credited to the latest touch sent before it;
- interested: replied leads whose status is interested or booked, or whose inbound
  message was read as interest or booking;
- booked: leads whose status is booked; opted out: an opt-out after enrolling;
- response rate = replied / contacted, interest rate = interested / contacted, booking
  rate = booked / contacted; time to first reply is the median over replied leads;
- cost = SMS segments sent × the segment price + emails sent × the email price.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.repository import SqlRepository


def _rate(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


async def build_report(db: SqlRepository, *, campaign: str | None = None,
                       since: datetime | None = None, sms_segment_price: float = 0.0,
                       email_price: float = 0.0) -> list[dict[str, Any]]:
    records = await db.list_campaigns()
    if campaign is not None:
        records = [r for r in records if r.name == campaign]
        if not records:
            raise LookupError(f"no campaign named {campaign!r}")
    if not records:
        return []
    ids = [r.id for r in records]
    touch_rows = await db.campaign_touch_rows(ids, since)
    lead_rows = await db.campaign_lead_rows(ids, since)
    out: list[dict[str, Any]] = []
    for rec in records:
        touches: dict[tuple[int, int, str], dict[str, Any]] = {}
        per_touch: dict[int, dict[str, Any]] = {}
        cost = 0.0
        for cid, touch, variant, channel, queued, sent, delivered, failed, segments in \
                touch_rows:
            if cid != rec.id:
                continue
            sent, delivered, failed = int(sent or 0), int(delivered or 0), int(failed or 0)
            touches[(touch, variant, channel)] = {
                "touch": touch, "variant": variant, "channel": channel,
                "queued": int(queued), "sent": sent, "delivered": delivered, "failed": failed,
                "replied": 0}
            t = per_touch.setdefault(touch, {"touch": touch, "channel": channel, "sent": 0,
                                             "delivered": 0, "failed": 0, "replied": 0})
            t["sent"] += sent
            t["delivered"] += delivered
            t["failed"] += failed
            cost += int(segments or 0) * sms_segment_price if channel == "sms" \
                else sent * email_price
        enrolled = contacted = replied = interested = booked = opted = 0
        states: dict[str, int] = defaultdict(int)
        stops: dict[str, int] = defaultdict(int)
        waits: list[float] = []
        for cid, _phone, state, stop_reason, status, first_at, reply_at, reply_touch, \
                reply_variant, opted_out, interest_msg in lead_rows:
            if cid != rec.id:
                continue
            enrolled += 1
            states[state] += 1
            if stop_reason:
                stops[stop_reason] += 1
            if opted_out:
                opted += 1
            if status == "booked":
                booked += 1
            if first_at is None:
                continue
            contacted += 1
            if reply_at is None:
                continue
            replied += 1
            waits.append((reply_at - first_at).total_seconds())
            if status in ("interested", "booked") or interest_msg:
                interested += 1
            if reply_touch is not None:
                per_touch.setdefault(reply_touch, {"touch": reply_touch, "channel": "",
                                                   "sent": 0, "delivered": 0, "failed": 0,
                                                   "replied": 0})["replied"] += 1
                for (tn, var, _ch), row in touches.items():
                    if tn == reply_touch and var == (reply_variant or 0):
                        row["replied"] += 1
        sent_total = sum(t["sent"] for t in per_touch.values())
        out.append({
            "name": rec.name, "paused": rec.paused, "enrolled": enrolled,
            "states": dict(states), "stopped": dict(stops), "contacted": contacted,
            "sent": sent_total,
            "delivered": sum(t["delivered"] for t in per_touch.values()),
            "failed": sum(t["failed"] for t in per_touch.values()),
            "replied": replied, "opted_out": opted, "interested": interested,
            "booked": booked, "response_rate": _rate(replied, contacted),
            "interest_rate": _rate(interested, contacted),
            "booking_rate": _rate(booked, contacted),
            "median_first_reply_s": round(statistics.median(waits), 1) if waits else None,
            "cost": round(cost, 4),
            "funnel": {"contacted": contacted, "replied": replied, "interested": interested,
                       "booked": booked},
            "touches": [per_touch[k] for k in sorted(per_touch)],
            "variants": [touches[k] for k in sorted(touches)],
        })
    return out


def render_table(report: list[dict[str, Any]]) -> str:
    """The report as a plain text table (one block per campaign)."""
    lines: list[str] = []
    for c in report:
        lines.append(
            f"{c['name']}{' (paused)' if c['paused'] else ''}: enrolled {c['enrolled']}, "
            f"contacted {c['contacted']}, sent {c['sent']}, delivered {c['delivered']}, "
            f"failed {c['failed']}")
        lines.append(
            f"  replied {c['replied']} ({c['response_rate']:.1%}), interested "
            f"{c['interested']} ({c['interest_rate']:.1%}), booked {c['booked']} "
            f"({c['booking_rate']:.1%}), opted out {c['opted_out']}, cost {c['cost']:.2f}")
        med = c["median_first_reply_s"]
        lines.append(f"  median time to first reply: "
                     f"{'-' if med is None else f'{med / 3600:.1f} h'}")
        lines.append(f"  {'touch':>5} {'var':>3} {'channel':<7} {'sent':>7} {'deliv':>7} "
                     f"{'failed':>7} {'replied':>7}")
        for v in c["variants"]:
            lines.append(f"  {v['touch']:>5} {v['variant']:>3} {v['channel']:<7} "
                         f"{v['sent']:>7} {v['delivered']:>7} {v['failed']:>7} "
                         f"{v['replied']:>7}")
        lines.append("")
    return "\n".join(lines) if lines else "no campaigns\n"
