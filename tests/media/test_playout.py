"""Playout: pacing, checkpoints, what the caller heard, truncation, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.codecs.ulaw import FRAME_BYTES, SILENT_FRAME
from media.playout import Frame, Playout, Truncation
from media.settings import MediaSettings
from tests.audio import speech_ulaw
from tests.fakes.clock import ManualClock

SETTINGS = MediaSettings(mark_interval_ms=100, lead_frames=2, send_chunk_frames=1,
                         max_playout_ms=60_000)


@pytest.fixture(scope="module")
def speech() -> bytes:
    audio = speech_ulaw("Thanks for calling, how can I help you today?")
    assert len(audio) > 8000 and len(audio) % FRAME_BYTES  # > 1 s, ends in a partial frame
    return audio


def drain(p: Playout, ticks: int = 10_000) -> list[Frame]:
    out: list[Frame] = []
    for _ in range(ticks):
        got = p.frames_due(1)
        if not got and not p.speaking:
            break
        out += got
    return out


def test_lead_frames_then_one_frame_per_tick(speech: bytes) -> None:
    p = Playout(SETTINGS)
    assert p.frames_due(1) == ()
    p.push("a", speech)
    assert p.speaking
    first = p.frames_due(1)
    assert len(first) == 1 + SETTINGS.lead_frames
    assert [f for f, _ in first] == [speech[i * 160 : (i + 1) * 160] for i in range(3)]
    for i in range(3, 20):
        got = p.frames_due(1)
        assert len(got) == 1
        assert got[0][0] == speech[i * 160 : (i + 1) * 160]
    # A late tick (3 periods): refill what Twilio played meanwhile.
    assert len(p.frames_due(3)) == 3
    assert p.sent_frames == 23


def test_cushion_is_rebuilt_after_running_dry(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech[:1600])
    p.finish("a")
    out = drain(p)
    assert sum(f is not None for f, _ in out) == 10
    assert not p.speaking
    p.push("b", speech[:1600])
    assert len(p.frames_due(1)) == 3


def test_every_frame_is_whole_and_the_last_is_padded_with_silence(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech)
    p.finish("a")
    frames = [f for f, _ in drain(p) if f is not None]
    assert all(len(f) == FRAME_BYTES for f in frames)
    joined = b"".join(frames)
    assert joined[: len(speech)] == speech
    assert set(joined[len(speech) :]) == {0xFF}
    assert len(joined) - len(speech) < FRAME_BYTES


def test_checkpoints_every_interval_and_at_the_end_of_the_item(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("item_1", speech)
    p.finish("item_1")
    out = drain(p)
    marks = [(i, m) for i, (_, m) in enumerate(out) if m is not None]
    total_ms = len(speech) // 8
    expected = [("item_1", ms) for ms in range(100, total_ms, 100)]
    if total_ms % 100:
        expected.append(("item_1", total_ms))
    assert [m for _, m in marks] == expected
    # Interval marks follow every fifth frame; the final one the last frame.
    assert [i for i, _ in marks[:-1]] == [5 * k + 4 for k in range(len(marks) - 1)]
    assert marks[-1][0] == len(out) - 1


def test_checkpoints_follow_a_changed_interval_and_item_ids_with_colons(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("resp:1", speech[:4000])  # 500 ms
    p.update_settings(MediaSettings(mark_interval_ms=200, lead_frames=2))
    p.finish("resp:1")
    marks = [m for _, m in drain(p) if m]
    assert marks == [("resp:1", 100), ("resp:1", 300), ("resp:1", 500)]
    assert p.played("resp:1", 300)
    assert p.heard_ms("resp:1") == 300


def test_final_checkpoint_alone_when_finish_comes_after_the_last_frame(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech[:1200])  # 150 ms, open: 7 whole frames and a 80-byte tail
    out = drain(p, ticks=20)
    assert sum(f is not None for f, _ in out) == 7
    p.finish("a")
    out = p.frames_due(1)
    assert out == [(speech[1120:1200] + b"\xff" * 80, ("a", 150))]

    p = Playout(SETTINGS)
    p.push("b", speech[:960])  # 120 ms = 6 whole frames, mark at 100
    drain(p, ticks=20)
    p.finish("b")
    assert list(p.frames_due(1)) == [(None, ("b", 120))]


def test_heard_ms_follows_played_reports_and_rejects_bad_ones(speech: bytes) -> None:
    clock = ManualClock(0.0)
    p = Playout(SETTINGS, clock=clock)
    p.push("a", speech[:4000])
    p.finish("a")
    drain(p)
    assert p.heard_ms("a") == 0 and not p.idle
    assert p.played("a", 200)
    assert p.heard_ms("a") == 200
    assert p.played("a", 100)  # out of order: never goes back
    assert p.heard_ms("a") == 200
    for item, ms in (("a", 900), ("a", -5), ("zz", 100), ("", 100)):
        assert not p.played(item, ms)
    assert p.heard_ms("a") == 200
    clock.now = 1234.0
    assert p.played("a", 500)
    assert p.idle and p.idle_since_ms == 1234.0


def test_clear_reports_what_was_heard_and_ignores_flushed_checkpoints(speech: bytes) -> None:
    clock = ManualClock(0.0)
    p = Playout(SETTINGS, clock=clock)
    p.push("a", speech)
    sent = drain(p, ticks=15)  # 17 frames handed out
    names = [m for _, m in sent if m]
    assert names == [("a", 100), ("a", 200), ("a", 300)]
    p.played("a", 100)
    p.played("a", 200)
    clock.now = 500.0
    assert p.clear() == Truncation("a", heard_ms=200, sent_ms=17 * 20)
    assert not p.speaking and p.idle and p.idle_since_ms == 500.0
    # Twilio echoes the flushed mark after the clear: ignored.
    assert not p.played("a", 300)
    assert p.heard_ms("a") == 200
    # Late audio of the cancelled response is not played.
    assert p.push("a", speech[:1600]) == 0
    assert p.discarded_ms == 200
    assert p.frames_due(1) == ()
    # The next response plays normally, with a fresh cushion.
    p.push("b", speech[:1600])
    assert len(p.frames_due(1)) == 3
    assert p.clear() == Truncation("b", heard_ms=0, sent_ms=60)
    assert p.clear() is None


def test_clear_with_queued_but_unsent_audio(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech[:800])
    assert p.clear() == Truncation("a", 0, 0)


def test_new_item_finishes_the_previous_one(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech[:200])
    p.push("b", speech[:320])
    p.finish("b")
    out = drain(p)
    assert [f for f, _ in out] == [
        speech[:160],
        speech[160:200] + b"\xff" * 120,
        speech[:160],
        speech[160:320],
    ]
    assert [m for _, m in out] == [None, ("a", 25), None, ("b", 40)]
    assert p.current_item == "a"
    p.played("a", 25)
    assert p.current_item == "b"


def test_buffer_is_bounded_and_drops_are_counted(speech: bytes) -> None:
    p = Playout(MediaSettings(max_playout_ms=1000, lead_frames=2, send_chunk_frames=1))
    audio = (speech * 2)[:12_000]  # 1.5 s
    assert p.push("a", audio) == 8000
    assert p.dropped_ms == 500 and p.queued_ms == 1000
    assert p.push("a", audio[:800]) == 0
    assert p.dropped_ms == 600
    p.frames_due(1)
    assert p.push("a", audio[:800]) == 480  # room freed by the 3 frames sent


def test_underruns_count_ticks_an_open_item_starved(speech: bytes) -> None:
    p = Playout(SETTINGS)
    p.push("a", speech[:800])  # 5 frames, item stays open
    assert sum(len(p.frames_due(1)) for _ in range(3)) == 5
    assert p.underruns == 0
    for _ in range(3):
        assert p.frames_due(1) == []
    assert p.underruns == 3
    before = p.underruns
    p.finish("a")
    drain(p)
    assert p.underruns == before


def test_empty_items_and_speaking_state(speech: bytes) -> None:
    p = Playout(SETTINGS)
    assert p.push("a", b"") == 0
    p.finish("a")
    assert p.idle and not p.speaking
    assert p.push("a", speech[:160]) == 0  # finished
    p.push("b", speech[:320])
    p.finish("b")
    assert p.speaking and not p.idle
    drain(p)
    assert not p.speaking and not p.idle  # played out by estimate, marks not back yet
    p.played("b", 40)
    assert p.idle


def test_compaction_keeps_long_streams_correct(speech: bytes) -> None:
    p = Playout(MediaSettings(lead_frames=0, max_playout_ms=60_000))
    audio = (speech * 20)[: 160 * 2000]
    for i in range(0, len(audio), 2400):
        p.push("a", audio[i : i + 2400])
    p.finish("a")
    frames = [f for f, _ in drain(p) if f is not None]
    assert b"".join(frames) == audio


@st.composite
def operations(draw: st.DrawFn) -> list[tuple]:
    ops = []
    for _ in range(draw(st.integers(1, 80))):
        kind = draw(
            st.sampled_from(["push", "push", "finish", "tick", "tick", "mark", "forge", "clear"])
        )
        if kind == "push":
            ops.append(("push", draw(st.sampled_from("abc")), draw(st.integers(1, 3000))))
        elif kind == "finish":
            ops.append(("finish", draw(st.sampled_from("abc"))))
        elif kind == "tick":
            ops.append(("tick", draw(st.integers(1, 6))))
        elif kind == "mark":
            ops.append(("mark", draw(st.integers(0, 10_000))))
        elif kind == "forge":
            ops.append(("forge", draw(st.sampled_from("abc")), draw(st.integers(-5, 100_000))))
        else:
            ops.append(("clear",))
    return ops


@settings(max_examples=300, deadline=None)
@given(operations(), st.integers(0, 4), st.sampled_from([20, 60, 100, 300]),
       st.sampled_from([1, 2, 5]))
def test_heard_never_exceeds_sent(ops: list[tuple], lead: int, interval: int,
                                  chunk: int) -> None:
    settings_ = MediaSettings(mark_interval_ms=interval, lead_frames=lead, max_playout_ms=1000,
                              send_chunk_frames=chunk)
    p = Playout(settings_)
    source = speech_ulaw()
    pushed: dict[str, int] = {}
    marks_out: list[tuple[str, int]] = []
    for op in ops:
        if op[0] == "push":
            pushed[op[1]] = pushed.get(op[1], 0) + p.push(op[1], source[: op[2]])
        elif op[0] == "finish":
            p.finish(op[1])
        elif op[0] == "tick":
            got = p.frames_due(op[1])
            assert len([f for f, _ in got if f is not None]) <= op[1] + lead + chunk - 1
            for frame, mark in got:
                assert frame is None or len(frame) == FRAME_BYTES
                if mark is not None:
                    item, ms = mark
                    assert ms <= pushed[item] // 8
                    marks_out.append(mark)
        elif op[0] == "mark" and marks_out:
            p.played(*marks_out[op[1] % len(marks_out)])
        elif op[0] == "forge":
            p.played(op[1], op[2])
        elif op[0] == "clear":
            truncation = p.clear()
            if truncation is not None:
                assert 0 <= truncation.heard_ms <= truncation.sent_ms
                assert truncation.sent_ms <= pushed.get(truncation.item_id, 0) // 8
        assert p.queued_ms <= settings_.max_playout_ms + 20 * 3
        for item in "abc":
            assert 0 <= p.heard_ms(item) <= p.sent_ms(item) <= pushed.get(item, 0) // 8
    p.clear()
    assert p.idle and not p.speaking and p.frames_due(1) == ()


def test_silent_frame_constant_matches_padding() -> None:
    p = Playout(SETTINGS)
    p.push("a", b"\xff")
    p.finish("a")
    assert p.frames_due(1) == [(SILENT_FRAME, ("a", 0))]


def test_item_memory_is_bounded_over_a_long_call(speech: bytes) -> None:
    p = Playout(SETTINGS)
    for i in range(500):
        p.push(f"r{i}", speech[:800])
        p.finish(f"r{i}")
        for _, mark in drain(p):
            if mark:
                p.played(*mark)
        assert p.idle
    assert len(p._items) <= 64
    # A recent item is still recognised: its late audio is discarded.
    assert p.push("r499", speech[:160]) == 0


# --- chunked sends (send_chunk_frames > 1) ------------------------------------------------------

CHUNKED = MediaSettings(mark_interval_ms=100, lead_frames=2, send_chunk_frames=5,
                        max_playout_ms=60_000)


def test_chunks_refill_the_cushion_every_chunk_frames(speech: bytes) -> None:
    p = Playout(CHUNKED)
    p.push("a", speech)
    sizes = [len(p.frames_due(1)) for _ in range(16)]
    # lead + chunk at once, then nothing until the leg is down to the lead, then a chunk.
    assert sizes == [7, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 5]
    assert len(p.frames_due(3)) == 0  # the leg holds 7 - 3 = 4 > lead: still nothing
    assert len(p.frames_due(4)) == 7  # a late tick ran it dry: refill to lead + chunk


def test_chunked_output_is_the_per_tick_output_regrouped(speech: bytes) -> None:
    """Same frames, same checkpoints, same order: truncation precision is unchanged."""
    flat = []
    for settings_ in (SETTINGS, CHUNKED):
        p = Playout(settings_)
        p.push("a", speech)
        p.finish("a")
        p.push("b", speech[:1234])
        p.finish("b")
        flat.append(drain(p))
    assert flat[0] == flat[1]
    assert [m for _, m in flat[1] if m is not None][-1] == ("b", 1234 // 8)


def test_chunks_count_no_underrun_while_the_brain_keeps_up(speech: bytes) -> None:
    p = Playout(CHUNKED)
    p.push("a", speech[: 3 * FRAME_BYTES])  # the lead-in, then one frame per tick
    p.frames_due(1)
    for i in range(3, 60):
        p.push("a", speech[i * FRAME_BYTES : (i + 1) * FRAME_BYTES])
        p.frames_due(1)
    assert p.underruns == 0


def test_chunks_count_an_underrun_once_the_cushion_is_short(speech: bytes) -> None:
    p = Playout(CHUNKED)
    p.push("a", speech[:800])  # 5 frames, item stays open
    assert len(p.frames_due(1)) == 5  # wanted 7, the leg holds 5 > lead: not short yet
    assert not any(p.frames_due(1) for _ in range(2)) and p.underruns == 0
    assert not p.frames_due(1) and p.underruns == 1  # down to the lead with nothing to send


def test_chunks_do_not_hold_back_a_final_checkpoint(speech: bytes) -> None:
    p = Playout(CHUNKED)
    p.push("a", speech[:1000])  # 6 frames + 40 bytes, still open
    assert len(p.frames_due(1)) == 6
    p.finish("a")  # pads the tail: one more frame, then the final checkpoint
    assert not p.frames_due(1)  # the leg holds 5 frames > lead: the frame waits
    out = []
    for _ in range(5):
        out += p.frames_due(1)
    assert out[-1][1] == ("a", 1000 // 8)


def test_chunked_clear_reports_only_checkpoints_played(speech: bytes) -> None:
    p = Playout(CHUNKED)
    p.push("a", speech)
    first = p.frames_due(1)  # 7 frames: checkpoint at 100 ms inside the chunk
    assert [m for _, m in first if m is not None] == [("a", 100)]
    assert p.played("a", 100)
    assert not p.played("a", 200)  # not handed out yet
    truncation = p.clear()
    assert truncation == Truncation("a", 100, 140)
