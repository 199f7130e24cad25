"""The owner's new-lead notice: who called, on which number, about what, how urgent,
what they answered, and the summary. Text only, no I/O; one text and one email per
call (the idempotency key is the call sid, so a retry or a replay sends nothing twice)."""

from __future__ import annotations

from agents.analysis.record import CallAnalysis

MAX_SMS_CHARS = 600  # four segments: the owner's notice, not marketing
MAX_EMAIL_CHARS = 20_000


def notice_key(call_sid: str, channel: str) -> str:
    """The outbox idempotency origin of a call's notice on `channel`."""
    return f"new-lead:{channel}:{call_sid}"[:200]


def _problem(analysis: CallAnalysis) -> str:
    return analysis.problem or analysis.summary


def notice_sms(analysis: CallAnalysis) -> str:
    name = analysis.caller_name or "a caller who gave no name"
    number = analysis.caller_number or "unknown number"
    bits = [f"New lead for {analysis.business or 'your business'}: {name}, {number}."]
    bits.append(f"Priority {analysis.priority}" + (
        f" ({analysis.category})." if analysis.category else "."))
    if analysis.problem:
        bits.append(f'Said: "{analysis.problem[:160]}".')
    answered = [f"{f}: {a.answer[:60]}" for f, a in analysis.answers.items() if not a.refused]
    if answered:
        bits.append("; ".join(answered[:5]) + ".")
    bits.append(f"Outcome: {analysis.outcome.replace('_', ' ')}.")
    text = " ".join(bits)
    return text if len(text) <= MAX_SMS_CHARS else text[:MAX_SMS_CHARS - 1] + "…"


def notice_email(analysis: CallAnalysis) -> tuple[str, str]:
    """(subject, body) of the notice email."""
    name = analysis.caller_name or "unnamed caller"
    subject = (f"New lead ({analysis.priority}): {name} "
               f"{analysis.caller_number}").strip()[:200]
    lines = [
        f"A new lead called {analysis.business or 'your business'}.",
        "",
        f"Name:      {analysis.caller_name or '(not given)'}",
        f"Phone:     {analysis.caller_number or '(unknown)'}",
        f"Problem:   {_problem(analysis)[:500]}",
        f"Priority:  {analysis.priority}"
        + (f" ({analysis.category})" if analysis.category else ""),
        f"Outcome:   {analysis.outcome.replace('_', ' ')}",
        f"Direction: {analysis.direction}",
        "",
        "Answers:",
    ]
    if analysis.answers:
        for field, a in analysis.answers.items():
            lines.append(f"  {a.question or field}: "
                         + ("(declined)" if a.refused else a.answer))
    else:
        lines.append("  (none)")
    lines += ["", "Summary:", analysis.summary, "", f"Call: {analysis.call_sid}"]
    body = "\n".join(lines)
    return subject, body[:MAX_EMAIL_CHARS]
