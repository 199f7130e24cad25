"""The 911 line is heard first: agent audio queued before it is dropped, not played.

The gap (issue 9): the realtime brain's `instruct_next` cancelled the reply in
flight, but audio of that reply (or of a finished reply still playing out) was
already in the call's playout queue and went on playing before the safety line.
Now the brain asks the call to drop it (`BrainOutput.drop_agent_audio`), and the
call cuts it as a barge-in would: playout and the leg's buffer cleared, the item
truncated to what the caller heard.
"""

from __future__ import annotations

from agents.realtime.protocol import RealtimeConversation
from tests.agents.realtime.conftest import RecordingOutput
from tests.agents.realtime.test_protocol import created, delta, done, opened, sent, speak, types
from tests.audio import speech_ulaw
from tests.telephony.test_call import _Brain, _Rig

LINE = "Please leave the building now and call 911."


class CuttingOutput(RecordingOutput):
    """Does what `Call.drop_agent_audio` does to its brain: cancel, then truncate."""

    session: RealtimeConversation | None = None
    heard_ms = 200

    def drop_agent_audio(self) -> None:
        super().drop_agent_audio()
        assert self.session is not None
        self.session.cancel()
        if self.audio:
            self.session.truncate(next(reversed(self.audio)), self.heard_ms)


def _answering(out: RecordingOutput | None = None) -> RealtimeConversation:
    session, _, _ = opened()
    if out is not None:
        session.output = out
        out.session = session  # type: ignore[attr-defined]
    created(session, "resp_greet")
    done(session, "resp_greet")
    speak(session)
    sent(session)
    session.commit()
    sent(session)
    created(session, "resp_1")
    delta(session, "resp_1", "item_1", speech_ulaw("Sure, may I have your name?")[:8000])
    return session


def test_the_safety_line_drops_the_reply_in_flight_before_asking_for_the_next() -> None:
    out = CuttingOutput()
    session = _answering(out)
    session.instruct_next(f"Say first: {LINE}")
    assert out.drops == 1
    events = sent(session)
    # One cancel, the truncate to what was heard, and no response.create before the
    # cancelled one is done (one response at a time).
    assert types(events) == ["response.cancel", "conversation.item.truncate"]
    assert events[1]["item_id"] == "item_1" and events[1]["audio_end_ms"] == 200
    done(session, "resp_1", status="cancelled")
    (create,) = sent(session)
    assert create["type"] == "response.create" and LINE in create["response"]["instructions"]
    # The new reply is not cancelled by the cut: its audio reaches the call.
    created(session, "resp_2")
    delta(session, "resp_2", "item_2", b"\xff" * 800)
    assert len(out.audio["item_2"]) == 800


def test_a_finished_reply_still_playing_is_dropped_too() -> None:
    out = CuttingOutput()
    session = _answering(out)
    done(session, "resp_1")  # the model is done; its audio is still queued in the call
    sent(session)
    session.instruct_next(f"Say first: {LINE}")
    assert out.drops == 1
    events = sent(session)
    assert types(events) == ["conversation.item.truncate", "response.create"]
    assert LINE in events[1]["response"]["instructions"]


def test_while_reconnecting_the_audio_is_dropped_and_the_line_still_owed() -> None:
    session, out, _ = opened()
    session.connection_lost()
    session.instruct_next(f"Say first: {LINE}")
    assert out.drops == 1
    session.connection_made()
    creates = [e for e in sent(session) if e["type"] == "response.create"]
    assert creates and LINE in str(creates[-1].get("response"))


class _CutBrain(_Brain):
    def __init__(self) -> None:
        super().__init__()
        self.cancels = 0
        self.truncations: list[tuple[str, int]] = []

    def cancel(self) -> None:
        self.cancels += 1

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        self.truncations.append((item_id, audio_end_ms))


async def test_the_call_drops_queued_audio_and_truncates_like_a_barge_in() -> None:
    rig = _Rig(_CutBrain())
    await rig.call.start_brain()
    rig.call.agent_audio("reply", speech_ulaw("Sure, may I have your name and address?"))
    rig.call.agent_audio_done("reply")
    for i in range(5):
        rig.tick(100.02 * (i + 1))
    playout = rig.call.media.playout
    assert playout.queued_ms > 500
    frames = rig.leg.frames
    rig.call.drop_agent_audio()
    assert playout.queued_ms == 0 and playout.idle
    assert rig.brain.cancels == 1
    assert [item for item, _ in rig.brain.truncations] == ["reply"]
    rig.tick(101.0)
    assert rig.leg.frames == frames  # nothing more of it is sent
    # Nothing queued: nothing to cut, the brain is not told anything.
    rig.call.drop_agent_audio()
    assert rig.brain.cancels == 1
