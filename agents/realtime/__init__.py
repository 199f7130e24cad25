"""The OpenAI Realtime brain: speech-to-speech over the GA protocol, with tools and resilience.

- `protocol.RealtimeConversation`: the sans-I/O core (events in, actions out); it
  outlives the service's sessions (sockets), which are restored and rotated beneath it.
- `brain.RealtimeBrain`: the `agents.brain.Brain` a call uses (`kind = "openai"`).
- `breaker.should_use_realtime()`: False while the shared circuit breaker is open,
  so new calls start on the keyless brain.
- `stats.STATS`: what the brain counts, exported by `ops.metrics` at scrape.
- tools come from `agents.tools` (not Realtime-specific; re-exported here for
  the brain's users): typed functions, their registry and runner, the built-ins.

The names below are imported on first use: `breaker` and `stats` are read by
every process (metrics, brain selection), but the OpenAI SDK that `brain`
needs costs most of a second to import and only matters when a call uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.realtime.brain import RealtimeBrain, RealtimeUnavailable
    from agents.realtime.breaker import CircuitBreaker, default_breaker, should_use_realtime
    from agents.realtime.protocol import RealtimeConversation, RealtimeUsage, SessionConfig
    from agents.tools import Tool, ToolContext, ToolError, ToolRegistry, build_registry, tool

_EXPORTS = {
    "CircuitBreaker": "agents.realtime.breaker",
    "default_breaker": "agents.realtime.breaker",
    "should_use_realtime": "agents.realtime.breaker",
    "RealtimeBrain": "agents.realtime.brain",
    "RealtimeUnavailable": "agents.realtime.brain",
    "RealtimeConversation": "agents.realtime.protocol",
    "RealtimeUsage": "agents.realtime.protocol",
    "SessionConfig": "agents.realtime.protocol",
    "Tool": "agents.tools",
    "ToolContext": "agents.tools",
    "ToolError": "agents.tools",
    "ToolRegistry": "agents.tools",
    "build_registry": "agents.tools",
    "tool": "agents.tools",
}

__all__ = [
    "CircuitBreaker",
    "RealtimeBrain",
    "RealtimeConversation",
    "RealtimeUnavailable",
    "RealtimeUsage",
    "SessionConfig",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "build_registry",
    "default_breaker",
    "should_use_realtime",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
