"""The built-in tools: ending, transferring, keypad tones, remembering the caller's name.

They act only through their `ToolContext`, so any channel that implements
`ToolOutput` offers them (a text conversation can end a thread and remember a
name; what it cannot do it refuses with a `ToolError`). `transfer_call` is
offered only where a human's number is configured: a model offered a tool it
cannot use would promise the caller a human who never comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from agents.tools.framework import Tool, ToolContext, ToolError, ToolRegistry, tool


@tool
def end_call(
    context: ToolContext,
    reason: Annotated[
        str, msgspec.Meta(description="Why the call ends, e.g. 'caller said goodbye'.")
    ] = "conversation finished",
) -> str:
    """End the phone call. Use it when the caller is done or asks to hang up; say goodbye after."""
    context.end_call(reason)
    return "The call will end after your next reply. Say a short goodbye now."


@tool
def transfer_call(
    context: ToolContext,
    reason: Annotated[
        str, msgspec.Meta(description="Why a human is needed, in a few words.")
    ] = "",
) -> str:
    """Transfer the caller to a human colleague. Tell the caller you are connecting them."""
    if not context.transfer_number:
        raise ToolError("no human is available to take the call")
    context.transfer_call(context.transfer_number)
    return "The transfer starts after your next reply. Tell the caller you are connecting them."


@tool
def send_dtmf(
    context: ToolContext,
    digits: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[0-9*#wW]{1,32}$",
            description="Keys to press: 0-9, * and #; 'w' waits half a second.",
        ),
    ],
) -> str:
    """Press keys on the phone keypad, e.g. to navigate an automated phone menu."""
    context.send_dtmf(digits)
    return f"Sent DTMF {digits}."


@tool
def capture_caller_name(
    context: ToolContext,
    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=100,
            description="The caller's name as they said it, e.g. 'Maria Lopez'.",
        ),
    ],
) -> str:
    """Remember the caller's name once they tell you, so they are greeted by it next time."""
    name = " ".join(name.split())
    if not name:
        raise ToolError("the name is empty")
    context.caller_named(name)
    return f"Saved the caller's name: {name}."


@tool
def set_priority(
    context: ToolContext,
    priority: Annotated[
        Literal["LOW", "NORMAL", "HIGH", "URGENT"],
        msgspec.Meta(description="How soon someone must act: URGENT means now (danger, "
                     "active damage), HIGH today, NORMAL a regular booking, LOW information."),
    ],
    reason: Annotated[
        str, msgspec.Meta(max_length=300, description="What the caller said that shows it.")
    ] = "",
) -> str:
    """Raise the call's priority when the caller's situation is more urgent than it seemed.
    It can only be raised; an urgent call alerts the owner."""
    flow = context.call.flow
    if flow is None:
        raise ToolError("this call has no business to prioritise for")
    changed = flow.set_priority(priority, reason)
    if changed:
        return f"The call's priority is now {flow.priority}."
    return f"The call's priority stays {flow.priority} (it is never lowered)."


BUILTIN_TOOLS: tuple[Tool, ...] = (end_call, transfer_call, send_dtmf, capture_caller_name)


def build_registry(extra_paths: Iterable[str] = (), *, transfer: bool = True) -> ToolRegistry:
    """Built-ins (transfer_call only when a human number is configured) plus config tools."""
    registry = ToolRegistry(t for t in BUILTIN_TOOLS if transfer or t is not transfer_call)
    for path in extra_paths:
        registry.load(path)
    return registry
