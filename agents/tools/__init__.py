"""Tools a model may call: the framework (`framework`) and the built-ins (`builtin`).

Shared by every agent that talks to a model, by voice or by text.
"""

from agents.tools.builtin import BUILTIN_TOOLS, build_registry
from agents.tools.framework import (
    TOOL_STATS,
    Tool,
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolError,
    ToolOutput,
    ToolRegistry,
    ToolRunner,
    ToolStats,
    load_tool,
    tool,
)

__all__ = [
    "BUILTIN_TOOLS",
    "TOOL_STATS",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "ToolOutput",
    "ToolRegistry",
    "ToolRunner",
    "ToolStats",
    "build_registry",
    "load_tool",
    "tool",
]
