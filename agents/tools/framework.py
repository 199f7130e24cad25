"""The tool framework: typed Python functions a model may call, for any channel.

Nothing here is specific to the Realtime API or to voice: the same tool, its
schema and its runner serve a phone call's brain and a text conversation.
The built-in tools live in `agents.tools.builtin`.

A tool is an ordinary (async or sync) function. Its parameters and type hints
become a msgspec struct, which gives both the JSON schema offered to the model
(`session.update` for Realtime, a `tools` list for a text model) and a strict
decoder for the arguments the model sends back,
so bad JSON or a schema violation is caught before the function runs and is
answered to the model as a tool error instead of raising inside the call.
Descriptions come from the docstring and from `Annotated[..., msgspec.Meta(
description=...)]`; constraints (`Meta(pattern=..., ge=...)`) are enforced.

A parameter annotated `ToolContext` is not part of the schema: it is how a
tool reaches the conversation (end it, transfer it, send DTMF, remember the
name) through a `ToolOutput` without importing the telephony or SMS layers.
Each call runs as its own task with a timeout; a tool marked
`cancel_on_barge_in` is cancelled when the person interrupts.

Outcomes are counted into a `ToolStats` (plain ints, a latency ring per tool)
that `ops/` exports at scrape time; the runner never touches Prometheus.

Extra tools are registered from config by dotted path ("pkg.mod:func" or
"pkg.mod.func"), so plugins add tools without editing this package.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, get_type_hints

import msgspec

from agents.brain import CallContext
from media.clock import SampleRing

log = logging.getLogger("leadline.agents.tools")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolError(Exception):
    """Raised by a tool to tell the model what went wrong (the message is sent to it)."""


class ToolArgumentsError(ToolError):
    """The model's arguments are not valid JSON or do not fit the tool's schema."""


class ToolOutput(Protocol):
    """What tools can ask of the conversation; a call's `BrainOutput` is one.

    A channel that cannot do something (a text thread cannot press keys)
    implements it by raising `ToolError`, which the model hears as the answer.
    """

    def end_call(self, reason: str) -> None: ...
    def transfer_call(self, number: str) -> None: ...
    def send_dtmf(self, digits: str) -> None: ...
    def caller_named(self, name: str) -> None: ...


class ToolContext:
    """What a tool may do to the conversation it serves.

    `end_call` and `transfer_call` take effect once the model's reply to the
    tool result has been produced (the goodbye or "connecting you now" is
    said first); `send_dtmf` is immediate.
    """

    def __init__(
        self,
        call: CallContext,
        output: ToolOutput,
        *,
        after_reply: Callable[[Callable[[], None]], None],
        transfer_number: str = "",
    ) -> None:
        self.call = call
        self.transfer_number = transfer_number
        self._output = output
        self._after_reply = after_reply

    def end_call(self, reason: str) -> None:
        output = self._output
        self._after_reply(lambda: output.end_call(reason))

    def transfer_call(self, number: str) -> None:
        output = self._output
        self._after_reply(lambda: output.transfer_call(number))

    def send_dtmf(self, digits: str) -> None:
        self._output.send_dtmf(digits)

    def caller_named(self, name: str) -> None:
        """Remember the caller's name (stored off the hot path by the call's observer)."""
        self._output.caller_named(name)

    def after_reply(self, action: Callable[[], None]) -> None:
        """Run `action` once the model's reply to this tool's result is complete."""
        self._after_reply(action)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    func: Callable[..., Any]
    args_type: type[msgspec.Struct]
    parameters: dict[str, Any]
    context_param: str | None = None
    timeout_s: float | None = None
    cancel_on_barge_in: bool = False
    _decoder: msgspec.json.Decoder[Any] = field(default=None, repr=False)  # type: ignore[assignment]

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        cancel_on_barge_in: bool = False,
    ) -> Tool:
        tool_name = name or func.__name__
        if not _NAME.match(tool_name):
            raise ValueError(f"invalid tool name {tool_name!r}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        hints = get_type_hints(func, include_extras=True)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        context_param = None
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ValueError(f"tool {tool_name}: *args/**kwargs cannot be described")
            hint = hints.get(param.name)
            if hint is None:
                raise ValueError(f"tool {tool_name}: parameter {param.name!r} needs a type hint")
            if hint is ToolContext:
                context_param = param.name
                continue
            if param.default is inspect.Parameter.empty:
                fields.append((param.name, hint))
            else:
                fields.append((param.name, hint, param.default))
        args_type = msgspec.defstruct(
            f"{tool_name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
        )
        doc = description if description is not None else inspect.getdoc(func) or ""
        summary = doc.strip().split("\n\n", 1)[0].replace("\n", " ")
        return cls(
            name=tool_name,
            description=summary,
            func=func,
            args_type=args_type,
            parameters=_parameters_schema(args_type),
            context_param=context_param,
            timeout_s=timeout_s,
            cancel_on_barge_in=cancel_on_barge_in,
            _decoder=msgspec.json.Decoder(args_type),
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def definition(self) -> dict[str, Any]:
        """The `tools` entry for `session.update` (GA function tool)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    def parse_arguments(self, raw: str) -> dict[str, Any]:
        """Arguments as keyword arguments, or `ToolArgumentsError` saying what is wrong."""
        try:
            args = self._decoder.decode(raw.strip() or "{}")
        except msgspec.ValidationError as exc:  # a DecodeError subclass: test it first
            raise ToolArgumentsError(f"invalid arguments: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ToolArgumentsError(f"arguments are not valid JSON: {exc}") from None
        return {name: getattr(args, name) for name in args.__struct_fields__}

    async def invoke(self, kwargs: dict[str, Any], context: ToolContext) -> Any:
        if self.context_param is not None:
            kwargs = {**kwargs, self.context_param: context}
        result = self.func(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


def _parameters_schema(args_type: type[msgspec.Struct]) -> dict[str, Any]:
    (ref,), components = msgspec.json.schema_components(
        (args_type,), ref_template="#/$defs/{name}"
    )
    own_name = ref["$ref"].rsplit("/", 1)[1]
    schema = dict(components.pop(own_name))
    schema.pop("title", None)
    schema.setdefault("properties", {})
    schema["type"] = "object"
    schema["additionalProperties"] = False
    if components:
        schema["$defs"] = components
    return schema


def tool(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    cancel_on_barge_in: bool = False,
) -> Any:
    """Decorator: `@tool` or `@tool(timeout_s=3, cancel_on_barge_in=True)`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            f,
            name=name,
            description=description,
            timeout_s=timeout_s,
            cancel_on_barge_in=cancel_on_barge_in,
        )

    return wrap(func) if func is not None else wrap


def format_result(value: Any) -> str:
    """A tool's return value as the `output` string of `function_call_output`."""
    if isinstance(value, str):
        return value
    if value is None:
        return '{"ok":true}'
    return msgspec.json.encode(value).decode()


def format_error(message: str) -> str:
    return msgspec.json.encode({"error": message}).decode()


@functools.lru_cache(maxsize=128)
def load_tool(path: str) -> Tool:
    """Import a tool by dotted path: "package.module:attribute" or "package.module.attribute"."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"tool path {path!r} is not 'module:function'")
    obj = getattr(importlib.import_module(module_name), attr)
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return Tool.from_function(obj)
    raise TypeError(f"{path} is neither a function nor a Tool")


class ToolRegistry:
    """The tools offered to the model in one call (names are unique)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> Tool:
        if t.name in self._tools:
            raise ValueError(f"tool {t.name!r} registered twice")
        self._tools[t.name] = t
        return t

    def register(self, func: Callable[..., Any] | Tool, **options: Any) -> Tool:
        t = func if isinstance(func, Tool) else Tool.from_function(func, **options)
        return self.add(t)

    def load(self, path: str) -> Tool:
        return self.add(load_tool(path))

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


# --- running tool calls ----------------------------------------------------------

# Bucket bounds (seconds) of the tool run time histogram.
TOOL_SECONDS_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Recent run times kept per tool (the histogram itself counts every run).
_TOOL_WINDOW = 256
# Outcomes of a tool call, the closed set of the outcome label.
OUTCOMES = ("ok", "error", "invalid_arguments", "timeout", "cancelled", "unknown_tool",
            "rejected")


class ToolStats:
    """Tool calls counted by (tool, outcome), run times by tool; read at scrape time.

    Label values stay a closed set: tool names come from registries, and a
    name the model made up is counted under `UNKNOWN_TOOL_LABEL`.
    """

    __slots__ = ("calls", "seconds")

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], int] = {}
        self.seconds: dict[str, SampleRing] = {}

    def count(self, tool_name: str, outcome: str) -> None:
        key = (tool_name, outcome)
        self.calls[key] = self.calls.get(key, 0) + 1

    def took(self, tool_name: str, seconds: float) -> None:
        ring = self.seconds.get(tool_name)
        if ring is None:
            ring = self.seconds[tool_name] = SampleRing(_TOOL_WINDOW, TOOL_SECONDS_BOUNDS)
        ring.add(seconds)


# The process's tool figures (`ops.metrics` exports them).
TOOL_STATS = ToolStats()
UNKNOWN_TOOL_LABEL = "_unknown"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model made (from `response.function_call_arguments.done`)."""

    call_id: str
    name: str
    arguments: str
    item_id: str = ""


ReportFn = Callable[[str, str, bool], None]


class ToolRunner:
    """Runs a call's tool calls as tasks and reports each output exactly once.

    `report(call_id, output, respond)` receives the `function_call_output`
    text; `respond` is False for a call cancelled by barge-in (the caller is
    talking: the next caller turn brings the response).
    """

    def __init__(
        self,
        registry: ToolRegistry,
        context: ToolContext,
        report: ReportFn,
        *,
        default_timeout_s: float = 8.0,
        call_sid: str = "",
        max_running: int = 8,
        stats: ToolStats = TOOL_STATS,
    ) -> None:
        self.registry = registry
        self.stats = stats
        self.max_running = max_running
        self.context = context
        self._report = report
        self.default_timeout_s = default_timeout_s
        self._call_sid = call_sid
        self._tasks: dict[asyncio.Task[None], tuple[ToolCall, Tool]] = {}
        self._barged: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        return len(self._tasks)

    def start(self, call: ToolCall) -> None:
        t = self.registry.get(call.name)
        if t is None:
            self.stats.count(UNKNOWN_TOOL_LABEL, "unknown_tool")
            log.warning(
                "model called unknown tool %r", call.name[:64], extra={"call_sid": self._call_sid}
            )
            self._report(call.call_id, format_error(f"unknown tool {call.name!r}"), True)
            return
        if len(self._tasks) >= self.max_running:
            self.stats.count(t.name, "rejected")
            self._report(call.call_id, format_error("too many tool calls at once"), True)
            return
        try:
            kwargs = t.parse_arguments(call.arguments)
        except ToolArgumentsError as exc:
            self.stats.count(t.name, "invalid_arguments")
            log.warning(
                "tool %s: %s", t.name, exc, extra={"call_sid": self._call_sid}
            )
            self._report(call.call_id, format_error(str(exc)), True)
            return
        task = asyncio.get_running_loop().create_task(
            self._run(call, t, kwargs), name=f"tool:{t.name}:{self._call_sid}"
        )
        self._tasks[task] = (call, t)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._barged.discard(task)

    def cancel_interruptible(self) -> None:
        """Barge-in: cancel the running tools marked `cancel_on_barge_in`."""
        for task, (_call, t) in list(self._tasks.items()):
            if t.cancel_on_barge_in and task not in self._barged:
                self._barged.add(task)
                task.cancel()

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, call: ToolCall, t: Tool, kwargs: dict[str, Any]) -> None:
        timeout = t.timeout_s if t.timeout_s is not None else self.default_timeout_s
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                value = await t.invoke(kwargs, self.context)
            output, outcome, respond = format_result(value), "ok", True
            self.stats.took(t.name, time.monotonic() - started)
        except TimeoutError:
            output = format_error(f"the tool did not answer within {timeout:g} s")
            outcome, respond = "timeout", True
            log.warning("tool %s timed out", t.name, extra={"call_sid": self._call_sid})
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task not in self._barged:
                # The call is closing: nobody is left to answer.
                self.stats.count(t.name, "cancelled")
                raise
            self._barged.discard(task)  # type: ignore[arg-type]
            output = format_error("cancelled because the caller interrupted")
            outcome, respond = "cancelled", False
        except ToolError as exc:
            output, outcome, respond = format_error(str(exc)), "error", True
        except Exception as exc:
            log.exception("tool %s failed", t.name, extra={"call_sid": self._call_sid})
            output = format_error(f"the tool failed: {type(exc).__name__}")
            outcome, respond = "error", True
        self.stats.count(t.name, outcome)
        self._report(call.call_id, output, respond)
