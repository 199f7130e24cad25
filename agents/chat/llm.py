"""The thin async shell around an OpenAI-compatible Chat Completions endpoint.

The official `openai` SDK is used with a configurable `base_url`, so the same
code talks to OpenAI, Ollama and vLLM. Every way a call can go wrong is turned
into one `LlmError` with a `kind`, because the agent's answer to all of them is
the same (the templated reply) and ops wants them counted apart. The SDK's own
retries are off: a text reply waits at most `timeout_s`, and the fallback is a
better answer than a late one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from agents.chat.settings import SmsSettings

log = logging.getLogger(__name__)

LlmErrorKind = Literal[
    "timeout", "http_5xx", "rate_limited", "http_4xx", "connection", "malformed", "empty",
    "error",
]


class LlmError(Exception):
    """One failed completion; `kind` says which way it failed."""

    def __init__(self, kind: LlmErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: LlmErrorKind = kind
        self.detail = detail


class LlmClient(Protocol):
    """What the chat agent needs from a model: messages in, the reply's text out."""

    async def complete(self, messages: Sequence[dict[str, str]], *, json_mode: bool) -> str:
        """The first choice's content; raises LlmError on any failure (empty content too)."""
        ...


class OpenAIChatClient:
    """`LlmClient` over `AsyncOpenAI(base_url=…, api_key=…, timeout=…)`.

    JSON mode (`response_format={"type": "json_object"}`) is asked for when the caller
    wants it; a server that rejects the parameter with a 400 gets the request again
    without it, and is not asked again by this client.
    """

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: float,
                 max_tokens: int = 300) -> None:
        from openai import AsyncOpenAI

        # Local servers (Ollama, vLLM) accept any key, but the SDK refuses an empty one.
        self._client = AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed",
                                   timeout=timeout_s, max_retries=0)
        self.model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.json_mode_supported = True

    async def close(self) -> None:
        await self._client.close()

    async def complete(self, messages: Sequence[dict[str, str]], *, json_mode: bool) -> str:
        import openai

        want_json = json_mode and self.json_mode_supported
        try:
            # The SDK's timeout covers each HTTP phase; this bounds the whole call.
            async with asyncio.timeout(self.timeout_s):
                try:
                    completion = await self._create(messages, want_json)
                except openai.BadRequestError as exc:
                    if not want_json or "response_format" not in str(exc):
                        raise
                    log.info("chat LLM rejects response_format; using plain text from now on")
                    self.json_mode_supported = False
                    completion = await self._create(messages, False)
        except (TimeoutError, openai.APITimeoutError) as exc:
            raise LlmError("timeout", f"no answer within {self.timeout_s:g} s") from exc
        except openai.APIStatusError as exc:
            kind: LlmErrorKind = (
                "rate_limited" if exc.status_code == 429
                else "http_5xx" if exc.status_code >= 500 else "http_4xx"
            )
            raise LlmError(kind, f"HTTP {exc.status_code}: {_short(exc.message)}") from exc
        except openai.APIConnectionError as exc:
            raise LlmError("connection", _short(str(exc))) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:  # bad JSON body
            raise LlmError("malformed", _short(str(exc))) from exc
        except openai.OpenAIError as exc:
            raise LlmError("error", _short(str(exc))) from exc
        return _content(completion)

    async def _create(self, messages: Sequence[dict[str, str]], want_json: bool) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "max_tokens": self.max_tokens,
            "temperature": 0.3,
        }
        if want_json:
            kwargs["response_format"] = {"type": "json_object"}
        return await self._client.chat.completions.create(**kwargs)


def _content(completion: Any) -> str:
    """The first choice's text, or LlmError: a 200 with an unusable body is still a failure."""
    from openai.types.chat import ChatCompletion

    if not isinstance(completion, ChatCompletion):
        raise LlmError("malformed", f"not a chat completion: {type(completion).__name__}")
    # The SDK does not validate response bodies, so any field may be missing or mistyped.
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise LlmError("malformed", "no choices")
    message = getattr(choices[0], "message", None)
    if message is None:
        raise LlmError("malformed", "no message in the first choice")
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise LlmError("empty", "empty content")
    return content


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"


def client_from_settings(settings: SmsSettings) -> OpenAIChatClient | None:
    """The configured model client, or None when `[sms] llm_base_url` is empty (templates)."""
    if not settings.llm_base_url:
        return None
    return OpenAIChatClient(base_url=settings.llm_base_url, api_key=settings.llm_api_key,
                            model=settings.llm_model, timeout_s=settings.llm_timeout_s)
