"""The model summary: one Chat Completions call, bounded by a timeout, or nothing.

Any failure (no endpoint, timeout, HTTP error, an empty or absurd answer) returns
None and the record keeps its extractive summary: a summary is never worth a lost
record or a late one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from agents.analysis.record import MAX_SUMMARY_CHARS, MAX_TURN_CHARS
from agents.chat.llm import LlmClient

log = logging.getLogger(__name__)

# Transcript characters sent to the model (the end of a long call is dropped).
MAX_PROMPT_CHARS = 12_000

SYSTEM = (
    "You summarise a phone call for the owner of a small business. In at most three "
    "short sentences say who called, what they need, any address, date or amount they "
    "gave, and what was agreed. Use only facts from the transcript. Plain text only."
)


def prompt(turns: Sequence[tuple[str, str]], priority: str) -> list[dict[str, str]]:
    lines: list[str] = []
    used = 0
    for role, text in turns:
        line = f"{'Caller' if role == 'caller' else 'Agent'}: {' '.join(text.split())}"
        line = line[:MAX_TURN_CHARS]
        if used + len(line) > MAX_PROMPT_CHARS:
            break
        lines.append(line)
        used += len(line) + 1
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Priority by our rules: {priority}.\n\n"
                                        + "\n".join(lines)}]


async def model_summary(client: LlmClient, turns: Sequence[tuple[str, str]], priority: str,
                        *, timeout_s: float, call_sid: str = "") -> str | None:
    """The model's summary, or None (logged) when it fails or is late."""
    try:
        async with asyncio.timeout(timeout_s):
            text = await client.complete(prompt(turns, priority), json_mode=False)
    except Exception as exc:  # LlmError, TimeoutError, anything: extractive it is
        log.warning("model summary failed; extractive summary kept",
                    extra={"call_sid": call_sid, "error": str(exc)[:200]})
        return None
    text = " ".join(str(text).split())
    if len(text) < 10:
        return None
    return text[:MAX_SUMMARY_CHARS]
