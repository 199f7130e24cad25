"""A fake OpenAI Chat Completions server, for tests and demos of the SMS agent.

`leadline dev fake-llm --port P [--script FILE]` serves, on 127.0.0.1:
- `POST /v1/chat/completions`: a non-streaming `chat.completion` JSON body, or
  with `"stream": true` server-sent `chat.completion.chunk` events ending in
  `data: [DONE]` — the wire format of the real service, which tests check by
  parsing every response with the SDK's own types;
- `GET /v1/models`: a model list;
- `GET /debug/received`: every request body received, for assertions.

The script (TOML or JSON) picks a reply per request: the first rule whose
`match` is a substring of the last user message (case-insensitive) wins, else
`default_reply` — or, for a coach request (its system prompt is the coach's,
`agents.coach.core`), `coach_reply`: valid guidance JSON unless the script says
otherwise. `reject_response_format = true` answers JSON mode with the 400
a server without it gives. A rule can also inject a fault instead of, or before, its
reply: `delay_s`, an HTTP `status` (429 and 5xx come with the service's error
body), a `malformed` body (not JSON), or `empty` content. Example:

    default_reply = '{"intent": "unknown", "confidence": 0.5, "reply": "Thanks!"}'
    [[rules]]
    match = "price"
    reply = '{"intent": "question", "confidence": 0.9, "reply": "It is $49."}'
    [[rules]]
    match = "slow"
    delay_s = 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

log = logging.getLogger(__name__)

# The checklist lines of a coach request: "- [ ] objective" (open) or "- [x] ..." (done).
_CHECKLIST = re.compile(r"^- \[( |x)\] (.+)$", re.MULTILINE)


def coach_guidance(user_text: str) -> str:
    """Valid guidance for a coach request: the first open objective is marked done and the
    next one becomes the next step, so each request moves the checklist on by one."""
    items = _CHECKLIST.findall(user_text)
    still = [text for mark, text in items if mark == " "]
    done = still[:1]
    following = still[1] if len(still) > 1 else "Close the call politely"
    return msgspec.json.encode({
        "objectives_done": done,
        "next_step": f"Work on: {following}",
        "say_next": "Would Tuesday at ten or Thursday at two work for a short call?",
        "warning": "",
    }).decode()

# Request bodies kept for /debug/received; older ones are dropped.
MAX_RECEIVED = 1000
MAX_BODY_BYTES = 1 << 20


class Rule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    match: str = ""
    reply: str | None = None
    delay_s: float = 0.0
    status: int = 200
    malformed: bool = False
    empty: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.delay_s <= 600:
            raise ValueError("delay_s must be in [0, 600]")
        if not 200 <= self.status <= 599:
            raise ValueError("status must be an HTTP status")


class Script(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    default_reply: str = "Thanks for your message! Someone will follow up shortly."
    rules: tuple[Rule, ...] = ()
    # Models listed by /v1/models; any model name is accepted by completions.
    models: tuple[str, ...] = ("gpt-4o-mini",)
    # Streamed replies are cut into chunks of this many characters.
    chunk_chars: int = 12
    # Answer `response_format` with the 400 older or smaller servers give.
    reject_response_format: bool = False
    # The answer to a coach request no rule matched (see `agents.coach.core`); empty:
    # `coach_guidance`, which ticks off one objective of the request's checklist per request.
    coach_reply: str = ""


def load_script(path: str | Path) -> Script:
    """A script from a .toml or .json file; raises ValueError/msgspec errors when invalid."""
    p = Path(path)
    data = p.read_bytes()
    if p.suffix.lower() == ".toml":
        return msgspec.convert(tomllib.loads(data.decode()), Script)
    return msgspec.json.decode(data, type=Script)


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
        429: "rate_limit_exceeded", 500: "server_error", 503: "server_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = "rate_limit_exceeded" if status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _is_coach(messages: list[Any]) -> bool:
    from agents.coach.core import COACH_PROMPT_MARK

    first = messages[0] if messages else None
    return (isinstance(first, dict) and first.get("role") == "system"
            and str(first.get("content", "")).startswith(COACH_PROMPT_MARK))


class FakeLlm:
    """The fake's state: its script and what it received."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.received: list[dict[str, Any]] = []

    def pick(self, text: str, *, coach: bool = False) -> Rule:
        low = text.lower()
        for rule in self.script.rules:
            if rule.match.lower() in low:
                return rule
        if coach:
            return Rule(reply=self.script.coach_reply or coach_guidance(text))
        return Rule(reply=self.script.default_reply)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app[FAKE_KEY] = self
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/debug/received", self._received)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        now = int(time.time())
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": now, "owned_by": "leadline-fake"}
            for m in self.script.models
        ]})

    async def _received(self, request: web.Request) -> web.Response:
        return web.json_response(self.received)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(_error_body(400, "We could not parse the JSON body of "
                                                      "your request."), status=400)
        if not isinstance(body, dict):
            return web.json_response(_error_body(400, "body must be a JSON object"), status=400)
        self.received.append(body)
        del self.received[:-MAX_RECEIVED]
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            return web.json_response(
                _error_body(400, "you must provide a model parameter and messages"), status=400)
        if self.script.reject_response_format and "response_format" in body:
            err = _error_body(400, "Invalid parameter: 'response_format' is not supported "
                                   "with this model.")
            err["error"]["param"] = "response_format"
            return web.json_response(err, status=400)
        rule = self.pick(_last_user_text(body["messages"]), coach=_is_coach(body["messages"]))
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.status != 200:
            return web.json_response(
                _error_body(rule.status, f"The server had an error (scripted {rule.status})."),
                status=rule.status)
        if rule.malformed:
            return web.Response(text='{"id": "chatcmpl-broken", "choices": [{"mess',
                                content_type="application/json")
        content = "" if rule.empty else (rule.reply or self.script.default_reply)
        model = body["model"]
        if body.get("stream"):
            return await self._stream(request, model, content)
        return web.json_response(_completion(model, content, body["messages"]))

    async def _stream(self, request: web.Request, model: str,
                      content: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        async def send(delta: dict[str, Any], finish: str | None) -> None:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": model, "system_fingerprint": "fp_fake",
                     "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish}]}
            await response.write(b"data: " + msgspec.json.encode(chunk) + b"\n\n")

        await send({"role": "assistant", "content": ""}, None)
        step = max(1, self.script.chunk_chars)
        for i in range(0, len(content), step):
            await send({"content": content[i:i + step]}, None)
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _completion(model: str, content: str, messages: list[Any]) -> dict[str, Any]:
    # Token counts are rough (4 characters a token): enough for code that reads usage.
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    prompt, completion = max(1, prompt_chars // 4), max(0, len(content) // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }


FAKE_KEY: web.AppKey[FakeLlm] = web.AppKey("fake_llm", FakeLlm)


class FakeLlmRunner(web.AppRunner):
    """An `AppRunner` serving the fake, with its state and address at hand."""

    @property
    def fake(self) -> FakeLlm:
        return self.app[FAKE_KEY]

    @property
    def port(self) -> int:
        return int(self.addresses[0][1])

    @property
    def base_url(self) -> str:
        """What to give the SDK (`base_url`) or `[sms] llm_base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"


async def serve_fake_llm(port: int = 0, script: Script | str | Path | None = None, *,
                         host: str = "127.0.0.1") -> FakeLlmRunner:
    """Start the fake on `host:port` (0: a free port); stop it with `await runner.cleanup()`."""
    if isinstance(script, (str, Path)):
        script = load_script(script)
    # A client that gave up (timeout) cancels its request, as on a real server: a scripted
    # delay must not hold the fake open.
    runner = FakeLlmRunner(FakeLlm(script).app(), handle_signals=False, access_log=None,
                           handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# --- command line -------------------------------------------------------------------


async def _serve_forever(args: argparse.Namespace, script: Script | None) -> None:
    runner = await serve_fake_llm(args.port, script, host=args.host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"fake chat completions listening on http://{args.host}:{runner.port}/v1", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; a bad script is exit code 2 before anything listens."""
    script = None
    if args.script:
        try:
            script = load_script(args.script)
        except (OSError, ValueError, msgspec.ValidationError, tomllib.TOMLDecodeError) as exc:
            print(f"error: {args.script}: {exc}", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve_forever(args, script))
    return 0


def main(argv: list[str] | None = None) -> int:
    from ops.dev.fake_llm_cli import add_arguments

    parser = add_arguments(argparse.ArgumentParser(
        prog="leadline dev fake-llm", description="Serve a fake OpenAI Chat Completions API."))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
