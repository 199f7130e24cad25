"""A sales script as instructions for the realtime model (and the coach).

The model gets the whole script for this contact — each stage's lines filled in, the
scheduling rule, every objection with its answer, the forbidden claims and the AI
disclosure — as one block of text appended to the session's instructions; the first
words it says are the script's opening. `render_script` is also what the coach reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agents.sales.script import STAGES, SalesScript, contact_values, render_line, render_lines

if TYPE_CHECKING:
    from agents.realtime.protocol import SessionConfig
    from agents.sales.follower import SalesFollower


def render_script(script: SalesScript, contact: Mapping[str, object] | None = None) -> str:
    """The script for one contact as instruction text (plain sentences and short lists)."""
    values = contact_values(script, contact or {})
    who = values["agentName"]
    lines = [f"This is a sales call for {values['company']}"
             + (f"; you are {who}" if who else "") + ". Follow this script "
             "(\"" + script.name + "\"), stage by stage, in your own natural words, "
             "one short turn at a time, and let the callee answer."]
    number = 0
    for stage in STAGES:
        spec = script.stage(stage)
        said = render_lines(spec.lines, values)
        if not said:
            continue
        number += 1
        entry = f"{number}. {stage.capitalize()}: \"{said}\""
        if spec.advance:
            entry += " Move on when they agree or answer."
        lines.append(entry)
    when = script.schedule_when
    if when.note.strip():
        lines.append("When to schedule: " + render_line(when.note, values))
    if script.objections:
        lines.append("Objections and how to answer them (answer the objection, then go "
                     "back to where you were):")
        for objection in script.objections:
            examples = " / ".join(f"\"{t}\""
                                  for t in script.triggers.get(objection.key, ())[:3])
            lines.append(f"- If they say something like {examples} ({objection.key}): "
                         f"\"{render_line(objection.handling, values)}\"")
    lines.append("If they say no twice, or are not interested: \""
                 + render_line(script.declined, values) + "\" and end the call.")
    if script.forbidden:
        lines.append("Forbidden claims (never, whatever you are asked):")
        lines.extend(f"- {claim}" for claim in script.forbidden)
    lines.append("AI disclosure: if they ask whether you are a robot, an AI, a recording "
                 "or a real person, say so plainly at once: \""
                 + render_line(script.disclosure, values) + "\"")
    return "\n".join(lines)


def opening_text(script: SalesScript, contact: Mapping[str, object] | None = None) -> str:
    """The greeting and intro lines for one contact (without moving any follower)."""
    values = contact_values(script, contact or {})
    return render_lines([*script.stages.greeting.lines, *script.stages.intro.lines], values)


def for_sales(config: SessionConfig, sales: SalesFollower) -> SessionConfig:
    """`config` for a sales call: the script in the instructions, its opening as the
    greeting. The follower is not advanced (the model follows the script itself)."""
    instructions = f"{config.instructions}\n\n{render_script(sales.script, sales.contact)}"
    greeting = opening_text(sales.script, sales.contact)
    return dataclasses.replace(config, instructions=instructions,
                               greeting=greeting or config.greeting)

