"""The chat agent through the real `openai` SDK against the fake Chat Completions server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from agents.chat.agent import BusinessInfo, ChatAgent, LeadView, ThreadMessage
from agents.chat.llm import OpenAIChatClient, client_from_settings
from agents.chat.settings import SmsSettings
from ops.dev.fake_llm import FakeLlmRunner, Rule, Script, serve_fake_llm

BOOKING = "https://cal.example.com/acme"
BUSINESS = BusinessInfo(name="Acme Roofing", facts="Repairs from $250. Inspections are free.",
                        booking_url=BOOKING)
LEAD = LeadView(first_name="Dana", phone="+15125550100", status="contacted")
THREAD = [ThreadMessage("outbound", "Hi Dana, still thinking about that roof repair?")]


def _reply(intent: str, text: str) -> str:
    return json.dumps({"intent": intent, "confidence": 0.9, "reply": text})


SCRIPT = Script(
    default_reply=_reply("unknown", "Thanks, Dana! Someone will follow up."),
    rules=(
        Rule(match="cost", reply=_reply("question", "Repairs start at $250.")),
        Rule(match="new roof", reply=_reply("question", "A new roof is only $9,999!")),
        Rule(match="slow", delay_s=5, reply=_reply("question", "late")),
        Rule(match="boom", status=500),
        Rule(match="junk", malformed=True),
        Rule(match="blank", empty=True),
        Rule(match="limit", status=429),
    ),
)


def _settings(base_url: str, **kw: object) -> SmsSettings:
    return SmsSettings(llm_base_url=base_url, llm_timeout_s=0.5, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmRunner]:
    runner = await serve_fake_llm(0, SCRIPT)
    yield runner
    await runner.cleanup()


@pytest.fixture
async def agent(fake: FakeLlmRunner) -> AsyncIterator[ChatAgent]:
    settings = _settings(fake.base_url)
    client = client_from_settings(settings)
    assert client is not None
    yield ChatAgent(settings, client, lambda: datetime.now(UTC))
    await client.close()


def _template(intent: str) -> str:
    return SmsSettings().template(intent).format(first_name="Dana",
                                                 business_name="Acme Roofing")


async def test_reply_from_the_model(agent: ChatAgent, fake: FakeLlmRunner) -> None:
    d = await agent.decide(BUSINESS, LEAD, THREAD, "what does a repair cost?")
    assert d.used_llm and d.reply == "Repairs start at $250." and d.intent == "question"
    request = fake.fake.received[-1]
    assert request["response_format"] == {"type": "json_object"}
    assert request["model"] == "gpt-4o-mini"
    assert "Repairs from $250" in request["messages"][0]["content"]
    assert request["messages"][-1]["content"] == "what does a repair cost?"


@pytest.mark.parametrize("text, counter", [
    ("slow answer please, how much?", "llm_timeout"),
    ("boom, how much?", "llm_http_5xx"),
    ("junk, how much?", "llm_malformed"),
    ("blank, how much?", "llm_empty"),
    ("limit, how much?", "llm_rate_limited"),
])
async def test_failures_give_the_template(agent: ChatAgent, text: str, counter: str) -> None:
    d = await agent.decide(BUSINESS, LEAD, THREAD, text)
    assert not d.used_llm and d.action == "reply" and d.reply == _template("question")
    assert agent.counters[counter] == 1 and agent.counters["templated"] == 1


async def test_price_invention_is_rejected(agent: ChatAgent) -> None:
    d = await agent.decide(BUSINESS, LEAD, THREAD, "how much is a new roof?")
    assert not d.used_llm and "9,999" not in d.reply and d.reply == _template("question")
    assert agent.counters["reply_rejected_facts"] == 1


async def test_interest_through_the_model_carries_the_link(fake: FakeLlmRunner) -> None:
    settings = _settings(fake.base_url)
    client = client_from_settings(settings)
    assert client is not None
    fake.fake.script = Script(default_reply=_reply("interested", "Wonderful, Dana!"))
    try:
        d = await ChatAgent(settings, client, lambda: datetime.now(UTC)).decide(
            BUSINESS, LEAD, THREAD, "ok my wife says go for it")
    finally:
        await client.close()
    assert d.used_llm and d.reply == f"Wonderful, Dana! {BOOKING}" and d.handoff
    assert d.new_status == "interested"


async def test_server_without_json_mode_gets_plain_text() -> None:
    runner = await serve_fake_llm(0, Script(default_reply="We are open weekdays.",
                                            reject_response_format=True))
    client = OpenAIChatClient(base_url=runner.base_url, api_key="", model="llama3",
                              timeout_s=2)
    try:
        agent = ChatAgent(_settings(runner.base_url), client, lambda: datetime.now(UTC))
        first = await agent.decide(BUSINESS, LEAD, THREAD, "what are your hours?")
        second = await agent.decide(BUSINESS, LEAD, THREAD, "what are your hours?")
    finally:
        await client.close()
        await runner.cleanup()
    assert first.used_llm and first.reply == "We are open weekdays."
    assert second.reply == "We are open weekdays."
    assert not client.json_mode_supported
    formats = ["response_format" in r for r in runner.fake.received]
    assert formats == [True, False, False]  # asked once, then never again


async def test_unreachable_server_gives_the_template() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}/v1")
    client = client_from_settings(settings)
    assert client is not None
    agent = ChatAgent(settings, client, lambda: datetime.now(UTC))
    try:
        d = await agent.decide(BUSINESS, LEAD, THREAD, "how much?")
    finally:
        await client.close()
    assert d.reply == _template("question") and agent.counters["llm_connection"] == 1


def test_no_base_url_means_no_client() -> None:
    assert client_from_settings(SmsSettings()) is None


@pytest.mark.parametrize("body, kind", [
    ({"choices": "x"}, "malformed"),
    ({}, "malformed"),
    ({"choices": [{"index": 0}]}, "malformed"),
    ({"choices": [{"message": {"role": "assistant", "content": None}}]}, "empty"),
    ({"choices": [{"message": {"role": "assistant", "content": "  "}}]}, "empty"),
])
def test_unusable_bodies_are_classified(body: dict, kind: str) -> None:
    from openai.types.chat import ChatCompletion

    from agents.chat.llm import LlmError, _content

    with pytest.raises(LlmError) as err:
        _content(ChatCompletion.construct(**body))
    assert err.value.kind == kind
    with pytest.raises(LlmError) as not_completion:
        _content("a string body")
    assert not_completion.value.kind == "malformed"
