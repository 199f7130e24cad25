"""What the realtime model is told about the business it answers for.

The session's instructions gain the business (name, trade, hours, its own
instructions), the capture questions in order with which ones matter in an
emergency, and the emergency policy; the greeting and voice become the
business's. Facts about the caller that `SessionConfig.for_call` added stay.
"""

from __future__ import annotations

import dataclasses

from agents.business.registry import greeting as business_greeting
from agents.business.settings import BusinessSettings
from agents.memory import CallerMemory
from agents.realtime.protocol import SessionConfig

_POLICY = {
    "take_message": "take their details so the owner can call back as soon as possible",
    "transfer": "transfer the call to a person (use transfer_call)",
    "alert_owner": "tell them the owner is being alerted right now",
}


def business_instructions(business: BusinessSettings) -> str:
    lines = [f"You answer the phone for {business.name}, a {business.industry} business "
             f"(time zone {business.timezone})."]
    if business.hours:
        hours = ", ".join(f"{day} {span}" for day, span in business.hours.items())
        lines.append(f"Opening hours: {hours}; other days closed.")
    if business.instructions.strip():
        lines.append(business.instructions.strip())
    if business.questions:
        asked = "; ".join(
            f"{i}. {q.text}{' (essential in an emergency)' if q.essential_for_emergency else ''}"
            for i, q in enumerate(business.questions, 1))
        lines.append("Collect these, one question at a time, in this order: " + asked + ". "
                     "In an emergency ask only the essential ones.")
    lines.append(f"In an emergency, {_POLICY[business.emergency_policy]}. If anyone may be "
                 "in danger (gas, smoke, fire, sparks, a medical emergency) tell them to get "
                 "to safety and call 911 before asking anything else.")
    lines.append("When the call is more urgent than it first seemed, use set_priority.")
    return " ".join(lines)


def for_business(config: SessionConfig, business: BusinessSettings,
                 memory: CallerMemory) -> SessionConfig:
    """`config` for a call to `business`: its instructions, greeting and voice."""
    instructions = f"{config.instructions}\n\n{business_instructions(business)}"
    greeting = config.greeting
    if business.greeting.strip():
        greeting = business_greeting(business, memory, business.greeting)
    return dataclasses.replace(config, instructions=instructions, greeting=greeting,
                               voice=business.voice or config.voice)
