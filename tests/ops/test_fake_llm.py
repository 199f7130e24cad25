"""The fake Chat Completions server speaks the real wire format: checked with the SDK's types."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ops.dev.fake_llm import FakeLlmRunner, Rule, Script, load_script, run, serve_fake_llm

SCRIPT = Script(
    default_reply="Default answer.",
    rules=(
        Rule(match="price", reply='{"intent": "question", "confidence": 0.9, "reply": "$49"}'),
        Rule(match="boom", status=500),
        Rule(match="busy", status=429),
        Rule(match="junk", malformed=True),
        Rule(match="nothing", empty=True),
        Rule(match="slow", delay_s=0.3, reply="late but here"),
    ),
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmRunner]:
    runner = await serve_fake_llm(0, SCRIPT)
    yield runner
    await runner.cleanup()


@pytest.fixture
async def client(fake: FakeLlmRunner) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=5)
    yield sdk
    await sdk.close()


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


async def _raw(fake: FakeLlmRunner, body: dict) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{fake.base_url}/chat/completions", json=body) as resp:
        return resp.status, await resp.read()


async def test_completion_validates_strictly_as_sdk_type(fake: FakeLlmRunner) -> None:
    status, raw = await _raw(fake, {"model": "gpt-4o-mini", "messages": _user("the price?")})
    assert status == 200
    completion = ChatCompletion.model_validate(json.loads(raw), strict=False)
    assert completion.object == "chat.completion"
    assert json.loads(completion.choices[0].message.content or "")["reply"] == "$49"
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_sdk_reply_default_and_match(client: openai.AsyncOpenAI) -> None:
    default = await client.chat.completions.create(model="m", messages=_user("hello"))
    assert isinstance(default, ChatCompletion)
    assert default.choices[0].message.content == "Default answer."
    matched = await client.chat.completions.create(model="m", messages=_user("What PRICE?"))
    assert "$49" in (matched.choices[0].message.content or "")


async def test_stream_chunks_parse_and_end_with_done(fake: FakeLlmRunner,
                                                     client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=_user("hello"),
                                                  stream=True)
    parts = []
    async for chunk in stream:
        assert isinstance(chunk, ChatCompletionChunk)
        parts.append(chunk.choices[0].delta.content or "")
        last = chunk
    assert "".join(parts) == "Default answer."
    assert last.choices[0].finish_reason == "stop"
    _, raw = await _raw(fake, {"model": "m", "messages": _user("hello"), "stream": True})
    events = [e for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    for event in events[:-1]:
        assert event.startswith("data: ")
        ChatCompletionChunk.model_validate(json.loads(event[6:]))


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert models == ["gpt-4o-mini"]


async def test_http_faults_carry_the_openai_error_body(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as server:
        await client.chat.completions.create(model="m", messages=_user("boom"))
    assert server.value.status_code == 500
    assert isinstance(server.value.body, dict) and server.value.body["type"] == "server_error"
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="m", messages=_user("busy now"))
    assert isinstance(limited.value.body, dict)
    assert limited.value.body["code"] == "rate_limit_exceeded"


async def test_malformed_empty_and_slow(fake: FakeLlmRunner, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(ValueError):
        await client.chat.completions.create(model="m", messages=_user("junk please"))
    empty = await client.chat.completions.create(model="m", messages=_user("nothing"))
    assert empty.choices[0].message.content == ""
    quick = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.1)
    try:
        with pytest.raises(openai.APITimeoutError):
            await quick.chat.completions.create(model="m", messages=_user("slow"))
    finally:
        await quick.close()
    late = await client.chat.completions.create(model="m", messages=_user("slow"))
    assert late.choices[0].message.content == "late but here"


async def test_bad_requests_are_400_and_received_is_recorded(fake: FakeLlmRunner) -> None:
    status, raw = await _raw(fake, {"model": "m"})
    assert status == 400 and "error" in json.loads(raw)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.base_url}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
        await _raw(fake, {"model": "m", "messages": _user("record me")})
        async with http.get(f"http://127.0.0.1:{fake.port}/debug/received") as resp:
            received = await resp.json()
    assert received[-1]["messages"][-1]["content"] == "record me"
    assert len(received) == 2  # the unparsable body is not a request to record


async def test_reject_response_format() -> None:
    runner = await serve_fake_llm(0, Script(reject_response_format=True))
    sdk = openai.AsyncOpenAI(base_url=runner.base_url, api_key="k", max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError, match="response_format"):
            await sdk.chat.completions.create(model="m", messages=_user("hi"),
                                              response_format={"type": "json_object"})
        ok = await sdk.chat.completions.create(model="m", messages=_user("hi"))
        assert ok.choices[0].message.content
    finally:
        await sdk.close()
        await runner.cleanup()


def test_scripts_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('default_reply = "hi"\n[[rules]]\nmatch = "x"\nstatus = 503\n')
    assert load_script(toml).rules[0].status == 503
    js = tmp_path / "s.json"
    js.write_text('{"rules": [{"match": "y", "delay_s": 1.5}]}')
    assert load_script(js).rules[0].delay_s == 1.5


def test_bad_script_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rules]]\nmatch = "x"\nstatus = 42\n')
    args = argparse.Namespace(script=str(bad), host="127.0.0.1", port=0)
    assert run(args) == 2
    assert "status" in capsys.readouterr().err
    missing = argparse.Namespace(script=str(tmp_path / "none.toml"), host="127.0.0.1", port=0)
    assert run(missing) == 2


async def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    import asyncio
    import os
    import signal
    import socket
    import sys

    script = tmp_path / "s.toml"
    script.write_text('default_reply = "from the cli"\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "dev", "fake-llm", "--port", str(port),
        "--script", str(script), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert f"127.0.0.1:{port}/v1" in line.decode()
        sdk = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k",
                                 max_retries=0)
        try:
            done = await sdk.chat.completions.create(model="m", messages=_user("hi"))
        finally:
            await sdk.close()
        assert done.choices[0].message.content == "from the cli"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
