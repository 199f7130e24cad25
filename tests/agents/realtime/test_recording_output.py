"""The recording BrainOutput the Realtime tests hand to the brain must stay a real one."""

from __future__ import annotations

import inspect

from agents.brain import BrainOutput
from tests.agents.realtime.conftest import RecordingOutput


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items()
            if not name.startswith("_") and callable(fn)}


def test_recording_output_has_every_brain_output_method_with_its_parameters() -> None:
    # A method the brain calls but the recorder lacks would raise inside the brain's
    # reader task and surface as an unrelated timeout; a changed signature likewise.
    wanted = _methods(BrainOutput)
    have = _methods(RecordingOutput)
    missing = sorted(set(wanted) - set(have))
    assert not missing, f"RecordingOutput lacks {missing}"
    for name, signature in wanted.items():
        assert list(have[name].parameters) == list(signature.parameters), name


def test_caller_named_is_recorded() -> None:
    out = RecordingOutput()
    out.caller_named("Maria")
    assert out.names == ["Maria"]
