"""The analysis shell: stored once, the new-lead notice once per call on each channel,
an invalid owner phone (clear error, email still sent), the model summary through the
real SDK against the fake Chat Completions server, and its fallback when late or down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from agents.analysis.analyst import CallAnalyst, Owner
from agents.analysis.record import CallFacts, Question
from agents.analysis.settings import AnalysisSettings
from ops.dev.fake_llm import FakeLlmRunner, Rule, Script, serve_fake_llm

START = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
OWNER = Owner(phone="+14155550199", email="joe@plumbing.example",
              business_number="+14155550100")


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.notified: dict[str, dict[str, Any]] = {}
        self.fail = False

    async def save_call_analysis(self, record: Mapping[str, Any]) -> bool:
        if self.fail:
            raise ConnectionError("database away")
        sid = str(record["call_sid"])
        if sid in self.rows:
            return False
        self.rows[sid] = dict(record)
        return True

    async def mark_analysis_notified(self, call_sid: str, notified: Mapping[str, Any]) -> None:
        self.notified.setdefault(call_sid, {}).update(notified)


class Recorder:
    def __init__(self) -> None:
        self.texts: list[tuple[str, str, str]] = []
        self.emails: list[tuple[str, str, str, str, str]] = []

    async def text_owner(self, to: str, body: str, origin: str) -> str:
        self.texts.append((to, body, origin))
        return "queued"

    async def email_owner(self, file_under: str, to_addr: str, subject: str, body: str,
                          key: str) -> str:
        self.emails.append((file_under, to_addr, subject, body, key))
        return "queued"


def facts(sid: str = "CA1", **kw: object) -> CallFacts:
    base: dict[str, object] = {
        "call_sid": sid, "started_at": START, "caller_number": "+14155552671",
        "caller_number_valid": True, "business": "Joe's Plumbing", "zone": "America/New_York",
        "new_caller": True, "priority": "HIGH", "category": "no_hot_water",
        "problem": "My water heater died, no hot water.",
        "questions": [Question("name", "May I have your name?", True)],
        "answers": {"name": "It's Raj Patel."},
        "turns": [("agent", "Joe's Plumbing."), ("caller", "My water heater died, no hot "
                                                           "water."),
                  ("agent", "May I have your name?"), ("caller", "It's Raj Patel.")]}
    base.update(kw)
    return CallFacts(**base)  # type: ignore[arg-type]


def analyst(settings: AnalysisSettings | None = None, llm: Any = None
            ) -> tuple[CallAnalyst, MemoryStore, Recorder]:
    store, rec = MemoryStore(), Recorder()
    cfg = settings or AnalysisSettings()
    kwargs = {"llm": llm} if llm is not None else {}
    return CallAnalyst(lambda: cfg, lambda: store, rec, **kwargs), store, rec


async def test_new_lead_is_stored_and_notified_once_per_call() -> None:
    a, store, rec = analyst()
    got = await a.finish(facts(), OWNER)
    assert got is not None and got.new_lead and got.caller_name == "Raj Patel"
    assert store.rows["CA1"]["outcome"] == "message_taken"
    [(to, body, origin)] = rec.texts
    assert to == "+14155550199" and origin == "new-lead:sms:CA1"
    assert "Raj Patel" in body and "+14155552671" in body and "HIGH" in body
    [(file_under, addr, subject, mail, key)] = rec.emails
    assert (file_under, addr, key) == ("+14155550199", "joe@plumbing.example",
                                       "new-lead:email:CA1")
    assert "Raj Patel" in subject and "no hot water" in mail.lower()
    assert "May I have your name?: It's Raj Patel." in mail and "Summary:" in mail
    assert store.notified["CA1"] == {"sms": "queued", "email": "queued"}
    # The same call ending again (a replayed stop) keeps the record and sends nothing.
    await a.finish(facts(), OWNER)
    assert len(rec.texts) == 1 and len(rec.emails) == 1 and a.stats.replays == 1


async def test_returning_caller_and_refusals_get_no_notice() -> None:
    a, store, rec = analyst()
    await a.finish(facts("CA2", new_caller=False), OWNER)
    refused = await a.finish(facts("CA3", answers={"name": "I'd rather not say"},
                                   priority="LOW", category="", problem="",
                                   turns=[("caller", "I'd rather not say")]), OWNER)
    assert refused is not None and not refused.success and refused.outcome == "info_only"
    assert "CA3" in store.rows and not store.rows["CA3"]["success"]
    assert [t[2] for t in rec.texts] == ["new-lead:sms:CA3"]  # a new caller is a lead


async def test_invalid_owner_phone_is_a_clear_error_and_the_email_still_goes(
        caplog: pytest.LogCaptureFixture) -> None:
    a, store, rec = analyst()
    owner = Owner(phone="not-a-phone", email="joe@plumbing.example",
                  business_number="+14155550100")
    with caplog.at_level(logging.ERROR, logger="agents.analysis.analyst"):
        await a.finish(facts(), owner)
    assert rec.texts == []
    [(file_under, *_)] = rec.emails
    assert file_under == "+14155550100"  # filed under the business's own number
    assert store.notified["CA1"] == {"sms": "invalid_owner_phone", "email": "queued"}
    assert any("not a phone number" in r.getMessage() for r in caplog.records)
    assert a.stats.invalid_owner_phones == 1


async def test_channels_and_switches() -> None:
    a, _, rec = analyst(AnalysisSettings(notify_channels=["email"]))
    await a.finish(facts(), OWNER)
    assert rec.texts == [] and len(rec.emails) == 1
    b, _, rec = analyst(AnalysisSettings(notify_new_leads=False))
    await b.finish(facts(), OWNER)
    assert rec.texts == rec.emails == []
    c, store, _ = analyst(AnalysisSettings(enabled=False))
    assert await c.finish(facts(), OWNER) is None and store.rows == {}
    d, store, rec = analyst()
    await d.finish(facts(), Owner())  # no contacts: stored, nothing sent
    assert "CA1" in store.rows and rec.texts == rec.emails == []
    assert store.notified["CA1"] == {"sms": "no_owner_phone", "email": "no_owner_email"}


async def test_store_failure_is_logged_and_nothing_is_sent() -> None:
    a, store, rec = analyst()
    store.fail = True
    got = await a.finish(facts(), OWNER)
    assert got is not None and a.stats.store_failures == 1 and rec.texts == []


async def test_offload_runs_the_builder_elsewhere() -> None:
    a, store, _ = analyst()
    await a.finish(facts(), OWNER, offload=asyncio.to_thread)
    assert "CA1" in store.rows


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLlmRunner]:
    runner = await serve_fake_llm(0, Script(default_reply="Raj Patel called: his water "
                                                          "heater died; wants a visit.",
                                            rules=(Rule(match="slow", delay_s=5.0,
                                                        reply="late"),
                                                   Rule(match="boom", status=500))))
    yield runner
    await runner.cleanup()


async def test_model_summary_through_the_sdk_and_its_fallbacks(fake_llm: FakeLlmRunner) -> None:
    cfg = AnalysisSettings(summary_base_url=fake_llm.base_url, summary_timeout_s=0.5)
    a, store, _ = analyst(cfg)
    got = await a.finish(facts("CA10"), OWNER)
    assert got is not None and got.summary_source == "model"
    assert got.summary.startswith("Raj Patel called")
    [request] = fake_llm.fake.received
    assert "My water heater died" in request["messages"][1]["content"]
    slow = await a.finish(facts("CA11", turns=[("caller", "slow: my heater")]), OWNER)
    assert slow is not None and slow.summary_source == "extractive"
    down = await a.finish(facts("CA12", turns=[("caller", "boom: my heater")]), OWNER)
    assert down is not None and down.summary_source == "extractive"
    assert a.stats.model_summaries == 1 and a.stats.model_fallbacks == 2
    assert store.rows["CA11"]["summary"].startswith("HIGH (no_hot_water)")
