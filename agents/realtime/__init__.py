"""The OpenAI Realtime brain: speech-to-speech over the GA protocol, with tools and resilience.

- `protocol.RealtimeSession`: the sans-I/O session core (events in, actions out).
- `brain.RealtimeBrain`: the `agents.brain.Brain` a call uses (`kind = "openai"`).
- `tools`: typed tool functions, their registry and runner; built-ins end_call,
  transfer_call, send_dtmf.
- `breaker.should_use_realtime()`: False while the shared circuit breaker is open,
  so new calls start on the keyless brain.
"""

from agents.realtime.brain import RealtimeBrain, RealtimeUnavailable
from agents.realtime.breaker import CircuitBreaker, default_breaker, should_use_realtime
from agents.realtime.protocol import RealtimeSession, RealtimeUsage, SessionConfig
from agents.realtime.tools import Tool, ToolContext, ToolError, ToolRegistry, build_registry, tool

__all__ = [
    "CircuitBreaker",
    "RealtimeBrain",
    "RealtimeSession",
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
