"""The owner alert core against an in-memory notifier: calls, retries, ack, text, once."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import msgspec
import pytest

from agents.business.alert import OwnerAlerts, alert_twiml
from agents.business.flow import CallFlow
from agents.business.settings import AlertSettings, BusinessSettings
from tests.helpers import eventually

OWNER = "+14155550199"


def _business(**extra: object) -> BusinessSettings:
    return msgspec.convert({"name": "Joe's Plumbing", "industry": "plumbing", "plan": "PRO",
                            "numbers": ["+14155550100"], "emergency_policy": "alert_owner",
                            "say_voice": "Polly.Joanna", "owner": {"phone": OWNER},
                            **extra}, BusinessSettings)


class Notifier:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.hung_up: list[str] = []
        self.texts: list[tuple[str, str, str]] = []
        self.records: list[tuple[str, dict[str, object]]] = []
        self.fail_next = False

    async def place_call(self, to: str, from_: str, twiml: str, alert_id: str,
                         ring_timeout_s: int) -> str:
        if self.fail_next:
            self.fail_next = False
            raise OSError("twilio unreachable")
        self.calls.append((to, from_, twiml))
        return f"CA{len(self.calls):032d}"

    async def hang_up(self, alert_call_sid: str) -> None:
        self.hung_up.append(alert_call_sid)

    async def send_text(self, to: str, body: str, origin: str) -> None:
        self.texts.append((to, body, origin))

    async def record(self, call_sid: str, kind: str, detail: dict[str, object]) -> None:
        self.records.append((kind, detail))


def _alerts(notifier: Notifier, **settings: object) -> OwnerAlerts:
    cfg = msgspec.convert({"backoff_s": [0.01], "ack_grace_s": 0.05, "outcome_wait_s": 2.0,
                           **settings}, AlertSettings)
    return OwnerAlerts(lambda: cfg, notifier, ack_url=lambda a: f"https://x.test/ack?alert={a}",
                       from_number=lambda b: b.numbers[0])


def _gas_flow() -> CallFlow:
    flow = CallFlow(_business(), caller_number="+14155552671")
    flow.caller_turn("I smell gas in the kitchen at 12 Main Street")
    return flow


async def test_acknowledged_on_the_first_call() -> None:
    notifier = Notifier()
    alerts = _alerts(notifier)
    assert alerts.start("CAcustomer", _gas_flow())
    assert not alerts.start("CAcustomer", _gas_flow())  # never twice for one call
    await eventually(lambda: notifier.calls, "the alert call")
    to, from_, twiml = notifier.calls[0]
    assert (to, from_) == (OWNER, "+14155550100")
    root = ET.fromstring(twiml)
    gather = root.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action") == "https://x.test/ack?alert=CAcustomer"
    says = [s.text or "" for s in gather.findall("Say")]
    assert len(says) == 2 and all(s == says[0] for s in says)
    assert "4 1 5 5 5 5 2 6 7 1" in says[0] and "gas" in says[0] and "12 Main" in says[0]
    assert gather.find("Say").get("voice") == "Polly.Joanna"
    assert alerts.status("CAcustomer", "CA" + "1".zfill(32), "in-progress")
    assert alerts.acknowledge("CAcustomer", "1")
    await eventually(lambda: any(k == "owner_alert_ack" for k, _ in notifier.records), "ack")
    assert len(notifier.calls) == 1 and notifier.texts == []
    assert notifier.records[0][1]["outcome"] == "acknowledged"
    await alerts.aclose()


async def test_busy_no_answer_and_voicemail_are_retried_then_texted() -> None:
    notifier = Notifier()
    alerts = _alerts(notifier, max_calls=3)
    alerts.start("CAc", _gas_flow())
    await eventually(lambda: len(notifier.calls) == 1, "call 1")
    alerts.status("CAc", "CA" + "1".zfill(32), "busy")
    await eventually(lambda: len(notifier.calls) == 2, "call 2")
    alerts.status("CAc", "CA" + "2".zfill(32), "in-progress", "machine_end_beep")
    await eventually(lambda: len(notifier.calls) == 3, "call 3")
    assert notifier.hung_up == ["CA" + "2".zfill(32)]
    alerts.status("CAc", "CA" + "3".zfill(32), "completed")  # answered, no key pressed
    await eventually(lambda: notifier.texts, "the text")
    assert notifier.texts[0][0] == OWNER and "URGENT" in notifier.texts[0][1]
    assert notifier.texts[0][2] == "owner-alert:CAc"
    outcomes = [d["outcome"] for k, d in notifier.records if k == "owner_alert"]
    assert outcomes == ["busy", "voicemail", "answered, not acknowledged"]
    assert [k for k, _ in notifier.records][-1] == "owner_alert_text"


async def test_a_status_of_another_call_is_ignored_and_a_failed_create_is_retried() -> None:
    notifier = Notifier()
    notifier.fail_next = True
    alerts = _alerts(notifier, max_calls=2)
    alerts.start("CAc", _gas_flow())
    await eventually(lambda: len(notifier.calls) == 1, "the retried call")
    assert not alerts.status("CAc", "CAnot-ours", "completed")
    assert not alerts.acknowledge("CAunknown", "1")
    assert not alerts.acknowledge("CAc", "2")
    assert alerts.acknowledge("CAc", "1")
    await eventually(lambda: any(k == "owner_alert_ack" for k, _ in notifier.records), "ack")
    first = notifier.records[0][1]
    assert str(first["outcome"]).startswith("not placed")


@pytest.mark.parametrize("extra", [{"emergency_policy": "take_message"}])
async def test_no_alert_unless_the_business_asks_for_one(extra: dict[str, object]) -> None:
    notifier = Notifier()
    alerts = _alerts(notifier)
    assert not alerts.start("CAc", CallFlow(_business(**extra)))
    await asyncio.sleep(0.05)
    assert notifier.calls == []


def test_twiml_escapes_what_the_caller_said() -> None:
    flow = CallFlow(_business())
    flow.caller_turn('gas smell <Hangup/> & "quotes"')
    root = ET.fromstring(alert_twiml(flow.summary(), flow.business, "https://x/ack", 1))
    assert root.find("Hangup") is not None and len(root.findall("Hangup")) == 1
    assert "<Hangup/>" in (root.find("Gather/Say").text or "")
