"""The seam between a call and whatever speaks for the agent.

A call drives its brain with a handful of non-blocking calls (caller audio in,
commit, cancel, truncate, DTMF) and receives agent audio, transcripts and tool
calls through a `BrainOutput` it hands over at start. Audio on both sides is
8 kHz μ-law, the Twilio wire format, so a brain that speaks `audio/pcmu`
(OpenAI Realtime) passes it through without transcoding; a leg with another
format converts at its edge.

Every method but `start` and `close` is synchronous and must return at once:
they are called from the media clock's tick, which serves every call in the
process. A brain that needs I/O queues the work onto its own task.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agents.memory import CallerMemory, recall

if TYPE_CHECKING:
    from agents.business.flow import CallFlow
    from agents.business.settings import BusinessSettings
    from agents.coach.core import CoachCore
    from agents.sales.follower import SalesFollower

Role = Literal["caller", "agent"]


@dataclass(slots=True)
class CallContext:
    """What a brain may know about the call it serves."""

    call_sid: str
    from_number: str = ""
    to_number: str = ""
    direction: Literal["inbound", "outbound"] = "inbound"
    # Caller memory as it travels with the call: a name, "" (ask for it) or None.
    caller_name: str | None = None
    # What a returning caller called about last time ("" unknown): `agents.memory`.
    last_issue: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    # The business the call is for (by the number called, or the outbound job);
    # None with no `[[businesses]]` configured: the brains use their own settings.
    business: BusinessSettings | None = None
    # The call's priority, safety line and capture answers (with a business only);
    # shared by the brain (its tools, the scripted questions) and the observers.
    flow: CallFlow | None = None
    # The meeting booked on this call (`agents.booking` tools set it: start, end, zone,
    # attendee, eventId, link); the dialer reports it in the outcome.
    meeting: dict[str, Any] | None = None
    # An outbound call with a sales script: its stage follower (the keyless brain speaks
    # its lines; the realtime brain gets the script in its instructions). None otherwise.
    sales: SalesFollower | None = None
    # A coached sales call ([coach]): the coach's objectives checklist and counts, which
    # the dialer records in the call's detail at the end (`CoachCore.summary()`).
    coach: CoachCore | None = None

    @property
    def memory(self) -> CallerMemory:
        """What we know about the caller, as `agents.memory` defines it."""
        return recall(self.caller_name, self.last_issue)


class BrainOutput(Protocol):
    """Implemented by the call; the brain's only way to reach the caller."""

    def agent_audio(self, item_id: str, ulaw: bytes) -> None:
        """Queue agent speech (8 kHz μ-law, any length) for paced playout."""

    def agent_audio_done(self, item_id: str) -> None:
        """The response `item_id` has no more audio to come."""

    def drop_agent_audio(self) -> None:
        """Agent audio queued and not yet heard must not be heard (the brain's next
        reply has to come first: the 911 line). The call drops it and tells the brain
        what was heard, as after a barge-in (`cancel`, then `truncate`)."""

    def transcript(self, role: Role, text: str, item_id: str | None = None) -> None:
        """A final transcript of a caller turn or an agent response."""

    def caller_speech_started(self) -> None:
        """The brain's own turn detection heard the caller (server VAD modes)."""

    def end_call(self, reason: str) -> None:
        """Hang up once the audio already queued has played out."""

    def transfer_call(self, number: str) -> None:
        """Hand the caller to a human at `number`."""

    def send_dtmf(self, digits: str) -> None:
        """Play DTMF tones to the far end (phone trees)."""

    def brain_failed(self, error: str) -> None:
        """The brain cannot go on; the call switches to the keyless brain."""

    def caller_named(self, name: str) -> None:
        """The caller said their name (tool or extractor); it is stored off the hot path."""


class Brain(abc.ABC):
    """One per call. Created unstarted; `start` connects and speaks first."""

    kind: str = "abstract"

    @abc.abstractmethod
    async def start(self, context: CallContext, output: BrainOutput) -> None:
        """Connect (bounded by a timeout) and begin the greeting."""

    @abc.abstractmethod
    def push_audio(self, ulaw: bytes) -> None:
        """Caller audio, 8 kHz μ-law, as it arrives (every frame of the call)."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Our turn detection says the caller's turn ended: answer it."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the response in progress (barge-in); produce no more audio for it."""

    @abc.abstractmethod
    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The caller heard only the first `audio_end_ms` of `item_id`.

        `audio_end_ms` is never more than the audio the brain produced for the
        item; 0 means nothing was heard and the item should be forgotten.
        """

    def dtmf(self, digit: str) -> None:  # noqa: B027 - optional hook
        """A keypad digit from the caller."""

    def tool_result(self, call_id: str, output: str) -> None:  # noqa: B027
        """Result of a tool call the brain asked for (when the call runs tools)."""

    def safety_first(self, line: str) -> None:  # noqa: B027 - optional hook
        """Life is at risk: `line` (get to safety, call 911) must be the very next thing
        the caller hears, before anything is asked or collected."""

    def coach_note(self, text: str) -> None:  # noqa: B027 - optional hook
        """Private guidance from the coach (agents/coach) for the agent's next turns.

        A brain with a model adds it to the model's context without interrupting the
        response in progress and without asking for a new one; a brain without a model
        has nothing to tell it and ignores it (this default)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""
