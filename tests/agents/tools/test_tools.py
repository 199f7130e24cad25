"""Tools: schema from the signature, strict arguments, tasks with timeouts and barge-in."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import msgspec
import pytest

from agents.brain import CallContext
from agents.tools import (
    Tool,
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolRunner,
    build_registry,
    load_tool,
    tool,
)
from tests.agents.realtime.conftest import RecordingOutput, eventually


class Slot(msgspec.Struct):
    day: Literal["mon", "tue", "wed"]
    hour: Annotated[int, msgspec.Meta(ge=8, le=18)]


@tool(timeout_s=2.0)
async def book(
    slot: Slot,
    name: Annotated[str, msgspec.Meta(min_length=1, description="Caller's name")],
    party: int = 2,
) -> dict[str, object]:
    """Book a table.

    Longer explanation that is not part of the description.
    """
    return {"booked": True, "day": slot.day, "name": name, "party": party}


def plain_tool(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def test_schema_comes_from_the_signature() -> None:
    d = book.definition()
    assert d["type"] == "function" and d["name"] == "book"
    assert d["description"] == "Book a table."
    params = d["parameters"]
    assert params["type"] == "object"
    assert set(params["required"]) == {"slot", "name"}
    assert params["properties"]["party"] == {"type": "integer", "default": 2}
    assert params["properties"]["name"]["description"] == "Caller's name"
    slot_ref = params["properties"]["slot"]["$ref"]
    slot = params["$defs"][slot_ref.rsplit("/", 1)[1]]
    assert slot["properties"]["day"]["enum"] == ["mon", "tue", "wed"]
    assert slot["properties"]["hour"] == {"type": "integer", "minimum": 8, "maximum": 18}


def test_context_parameter_is_not_in_the_schema() -> None:
    registry = build_registry()
    end_call = registry.get("end_call")
    assert end_call is not None
    assert "context" not in end_call.definition()["parameters"]["properties"]


@pytest.mark.parametrize(
    "arguments",
    [
        "{not json",
        '{"slot": {"day": "sun", "hour": 9}, "name": "Ann"}',
        '{"slot": {"day": "mon", "hour": 22}, "name": "Ann"}',
        '{"slot": {"day": "mon", "hour": 9}}',
        '{"slot": {"day": "mon", "hour": 9}, "name": ""}',
        '{"slot": {"day": "mon", "hour": 9}, "name": "Ann", "extra": 1}',
        "[1, 2]",
    ],
)
def test_bad_arguments_are_refused(arguments: str) -> None:
    with pytest.raises(ToolArgumentsError):
        book.parse_arguments(arguments)


def test_good_arguments_become_keywords() -> None:
    kwargs = book.parse_arguments('{"slot": {"day": "tue", "hour": 9}, "name": "Ann"}')
    assert kwargs["slot"] == Slot("tue", 9) and kwargs["name"] == "Ann" and kwargs["party"] == 2


def test_empty_arguments_mean_no_arguments() -> None:
    assert build_registry().get("end_call").parse_arguments("") == {  # type: ignore[union-attr]
        "reason": "conversation finished"
    }


def test_functions_without_hints_or_with_varargs_are_refused() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    def varargs(*args: int) -> None:
        return None

    with pytest.raises(ValueError):
        Tool.from_function(untyped)
    with pytest.raises(ValueError):
        Tool.from_function(varargs)
    with pytest.raises(ValueError):
        Tool.from_function(plain_tool, name="bad name!")


def test_registry_from_config_paths() -> None:
    registry = build_registry(
        ["tests.agents.tools.test_tools:book", "tests.agents.tools.test_tools.plain_tool"],
        transfer=False,
    )
    assert [t.name for t in registry] == ["end_call", "send_dtmf", "capture_caller_name",
                                           "book", "plain_tool"]
    with pytest.raises(ValueError):
        registry.load("tests.agents.tools.test_tools:book")  # registered twice
    with pytest.raises((ImportError, AttributeError)):
        load_tool("tests.agents.tools.test_tools:nope")
    with pytest.raises(ValueError):
        load_tool("nomodule")


class Harness:
    def __init__(self, registry: ToolRegistry, transfer_number: str = "") -> None:
        self.output = RecordingOutput()
        self.reports: list[tuple[str, str, bool]] = []
        self.after: list[object] = []
        context = ToolContext(
            CallContext(call_sid="CA1"), self.output,
            after_reply=self.after.append, transfer_number=transfer_number,
        )
        self.runner = ToolRunner(
            registry, context, lambda *r: self.reports.append(r), default_timeout_s=0.2,
            call_sid="CA1",
        )

    def output_of(self, call_id: str) -> str:
        return next(o for c, o, _ in self.reports if c == call_id)


async def test_runner_reports_results_and_errors() -> None:
    h = Harness(build_registry(["tests.agents.tools.test_tools:book"]))
    h.runner.start(ToolCall("c1", "book", '{"slot": {"day": "mon", "hour": 9}, "name": "Ann"}'))
    h.runner.start(ToolCall("c2", "book", "{oops"))
    h.runner.start(ToolCall("c3", "no_such_tool", "{}"))
    await eventually(lambda: len(h.reports) == 3)
    assert msgspec.json.decode(h.output_of("c1"))["booked"] is True
    assert "error" in msgspec.json.decode(h.output_of("c2"))
    assert "unknown tool" in msgspec.json.decode(h.output_of("c3"))["error"]
    assert all(respond for *_, respond in h.reports)


async def test_runner_times_out_a_hanging_tool() -> None:
    registry = ToolRegistry()

    @registry.register
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    h = Harness(registry)
    h.runner.start(ToolCall("c1", "hang", "{}"))
    await eventually(lambda: h.reports)
    assert "did not answer" in msgspec.json.decode(h.output_of("c1"))["error"]
    await eventually(lambda: h.runner.running == 0)


async def test_barge_in_cancels_only_tools_marked_so() -> None:
    registry = ToolRegistry()
    started = asyncio.Event()

    @tool(cancel_on_barge_in=True, timeout_s=30)
    async def lookup() -> str:
        """Slow lookup the caller may talk over."""
        started.set()
        await asyncio.sleep(30)
        return "late"

    @tool(timeout_s=30)
    async def booking() -> str:
        """Must finish even if the caller talks."""
        await started.wait()
        await asyncio.sleep(0.05)
        return "booked"

    registry.add(lookup)
    registry.add(booking)
    h = Harness(registry)
    h.runner.start(ToolCall("c1", "lookup", "{}"))
    h.runner.start(ToolCall("c2", "booking", "{}"))
    await started.wait()
    h.runner.cancel_interruptible()
    await eventually(lambda: len(h.reports) == 2)
    assert ("c2", "booked", True) in h.reports
    _call_id, output, respond = next(r for r in h.reports if r[0] == "c1")
    assert "interrupted" in output and respond is False


async def test_tool_errors_and_crashes_become_tool_errors() -> None:
    registry = ToolRegistry()

    @registry.register
    def refuse() -> str:
        """Refuses politely."""
        raise ToolError("the calendar is closed")

    @registry.register
    def crash() -> str:
        """Has a bug."""
        raise KeyError("boom")

    h = Harness(registry)
    h.runner.start(ToolCall("c1", "refuse", "{}"))
    h.runner.start(ToolCall("c2", "crash", "{}"))
    await eventually(lambda: len(h.reports) == 2)
    assert msgspec.json.decode(h.output_of("c1")) == {"error": "the calendar is closed"}
    assert "KeyError" in msgspec.json.decode(h.output_of("c2"))["error"]


async def test_builtins_act_on_the_call() -> None:
    h = Harness(build_registry(transfer=True), transfer_number="+14155550123")
    h.runner.start(ToolCall("c1", "send_dtmf", '{"digits": "1w2#"}'))
    h.runner.start(ToolCall("c2", "send_dtmf", '{"digits": "12x"}'))
    h.runner.start(ToolCall("c3", "end_call", '{"reason": "caller said bye"}'))
    h.runner.start(ToolCall("c4", "transfer_call", "{}"))
    await eventually(lambda: len(h.reports) == 4)
    assert h.output.dtmf == ["1w2#"]
    assert "error" in msgspec.json.decode(h.output_of("c2"))
    # end/transfer wait for the model's reply to the tool result.
    assert h.output.ended == [] and h.output.transfers == [] and len(h.after) == 2
    for action in h.after:
        action()  # type: ignore[operator]
    assert h.output.ended == ["caller said bye"]
    assert h.output.transfers == ["+14155550123"]


async def test_transfer_without_a_number_is_a_tool_error() -> None:
    h = Harness(build_registry(transfer=True), transfer_number="")
    h.runner.start(ToolCall("c1", "transfer_call", "{}"))
    await eventually(lambda: h.reports)
    assert "no human" in msgspec.json.decode(h.output_of("c1"))["error"]
    assert h.after == []


async def test_aclose_cancels_running_tools_without_reporting() -> None:
    registry = ToolRegistry()

    @registry.register
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(30)
        return "x"

    h = Harness(registry)
    h.runner.default_timeout_s = 60
    h.runner.start(ToolCall("c1", "slow", "{}"))
    await asyncio.sleep(0)
    await h.runner.aclose()
    assert h.reports == [] and h.runner.running == 0


async def test_running_tools_are_bounded() -> None:
    registry = ToolRegistry()
    gate = asyncio.Event()

    @registry.register
    async def wait() -> str:
        """Waits for the gate."""
        await gate.wait()
        return "ok"

    h = Harness(registry)
    h.runner.max_running = 2
    for i in range(3):
        h.runner.start(ToolCall(f"c{i}", "wait", "{}"))
    assert h.reports == [("c2", '{"error":"too many tool calls at once"}', True)]
    gate.set()
    await eventually(lambda: len(h.reports) == 3)
