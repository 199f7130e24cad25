"""TurnMachine: exact, clock-injected scenarios and a fuzzed invariant check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.settings import VadSettings
from media.turns import BargeIn, EndOfTurn, SpeechStarted, TurnMachine, TurnState

W = 20.0  # window ms
SETTINGS = VadSettings(start_ms=60, stop_ms=500, barge_in_ms=100)


def feed(tm: TurnMachine, t: float, pattern: str, window: float = W) -> tuple[list, float]:
    """Feed one VAD window per character ('S' speech, '_' silence), ticking as the clock
    would; returns (actions, time after the last window)."""
    actions: list = []
    for ch in pattern:
        t += window
        actions += tm.vad(t, ch == "S", window)
        actions += tm.tick(t)
    return actions, t


def ticks(tm: TurnMachine, t: float, ms: float) -> tuple[list, float]:
    """Clock ticks with no audio at all (Twilio skipped the silent chunks)."""
    actions: list = []
    end = t + ms
    while t < end:
        t += 20.0
        actions += tm.tick(t)
    return actions, t


def test_normal_turn_starts_after_start_ms_and_ends_after_stop_ms() -> None:
    tm = TurnMachine(SETTINGS)
    actions, t = feed(tm, 0.0, "SS")
    assert actions == [] and tm.state is TurnState.LISTENING
    actions, t = feed(tm, t, "S")
    assert actions == [SpeechStarted(at_ms=60.0, onset_ms=0.0, speech_ms=60.0)]
    assert tm.state is TurnState.CALLER_SPEAKING
    actions, t = feed(tm, t, "S" * 17)  # speech until 400 ms
    assert actions == []
    actions, t = feed(tm, t, "_" * 24)  # 480 ms of silence: not yet
    assert actions == [] and tm.state is TurnState.CALLER_SPEAKING
    actions, t = feed(tm, t, "_")
    assert actions == [EndOfTurn(at_ms=900.0, speech_ms=400.0, silence_ms=500.0, onset_ms=0.0)]
    assert tm.state is TurnState.LISTENING
    actions, t = feed(tm, t, "_" * 50)
    assert actions == []


def test_short_blips_do_not_start_a_turn() -> None:
    tm = TurnMachine(SETTINGS)
    # 40 ms blips separated by 100 ms: each run dies before reaching start_ms.
    actions, _ = feed(tm, 0.0, ("SS" + "_" * 5) * 10 + "_" * 40)
    assert actions == []
    assert tm.state is TurnState.LISTENING


def test_turn_ends_on_clock_ticks_when_no_audio_arrives() -> None:
    tm = TurnMachine(SETTINGS)
    actions, t = feed(tm, 0.0, "S" * 10)
    assert [type(a) for a in actions] == [SpeechStarted]
    actions, t = ticks(tm, t, 480.0)
    assert actions == []
    actions, t = ticks(tm, t, 20.0)
    assert actions == [EndOfTurn(at_ms=700.0, speech_ms=200.0, silence_ms=500.0, onset_ms=0.0)]


def test_barge_in_after_barge_in_ms_of_speech_over_the_agent() -> None:
    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    assert tm.state is TurnState.AGENT_SPEAKING
    actions, t = feed(tm, 1000.0, "_" * 3 + "SSSS")
    assert actions == []
    actions, t = feed(tm, t, "S")
    assert actions == [BargeIn(at_ms=1160.0, onset_ms=1060.0, speech_ms=100.0)]
    barge = actions[0]
    assert barge.at_ms - barge.onset_ms == SETTINGS.barge_in_ms
    assert tm.state is TurnState.CALLER_SPEAKING and not tm.agent_playing
    actions, t = feed(tm, t, "S" * 5 + "_" * 25)
    assert actions == [EndOfTurn(at_ms=1760.0, speech_ms=200.0, silence_ms=500.0, onset_ms=1060.0)]
    assert tm.state is TurnState.LISTENING


def test_cough_and_backchannel_do_not_interrupt_or_open_a_turn() -> None:
    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    # An 80 ms cough, then "uh" 60 ms, 120 ms pause, "huh" 60 ms, then isolated windows.
    pattern = "SSSS" + "_" * 10 + "SSS" + "_" * 6 + "SSS" + ("_" * 4 + "S") * 6 + "_" * 30
    actions, t = feed(tm, 0.0, pattern)
    assert actions == []
    assert tm.state is TurnState.AGENT_SPEAKING and tm.agent_playing
    # The agent finishes; the forgotten speech does not surface as a turn.
    tm.agent_stopped(t)
    actions, t = feed(tm, t, "_" * 40)
    assert actions == [] and tm.state is TurnState.LISTENING


def test_short_gaps_are_tolerated_long_ones_restart_the_run() -> None:
    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    # One or two silent windows (≤ 40 ms) inside the run: speech still adds up.
    actions, _ = feed(tm, 0.0, "SS_SS__S")
    assert [type(a) for a in actions] == [BargeIn]
    assert actions[0].onset_ms == 0.0 and actions[0].speech_ms == 100.0

    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    # A 60 ms gap splits the speech into two runs of 80 ms: no barge-in.
    actions, _ = feed(tm, 0.0, "SSSS___SSSS")
    assert actions == []
    assert tm.run_speech_ms == 80.0


def test_gap_tolerance_grows_with_the_window() -> None:
    # Silero-sized 32 ms windows: one silent window is a 32 ms gap, tolerated.
    tm = TurnMachine(SETTINGS, gap_ms=20.0)
    tm.agent_started(0.0)
    actions, _ = feed(tm, 0.0, "SS_SS", window=32.0)
    assert [type(a) for a in actions] == [BargeIn]


def test_update_settings_mid_call_applies_to_the_running_silence() -> None:
    tm = TurnMachine(SETTINGS)
    _, t = feed(tm, 0.0, "S" * 10)
    actions, t = feed(tm, t, "_" * 15)  # 300 ms of silence
    assert actions == []
    tm.update_settings(VadSettings(start_ms=60, stop_ms=200, barge_in_ms=100))
    actions = list(tm.tick(t + 1.0))
    assert actions == [EndOfTurn(at_ms=t + 1.0, speech_ms=200.0, silence_ms=301.0, onset_ms=0.0)]

    tm = TurnMachine(SETTINGS)
    _, t = feed(tm, 0.0, "S" * 10)
    actions, t = feed(tm, t, "_" * 20)  # 400 ms
    tm.update_settings(VadSettings(stop_ms=1000))
    actions, t = feed(tm, t, "_" * 29)  # 980 ms: the old 500 would have ended it
    assert actions == [] and tm.state is TurnState.CALLER_SPEAKING
    actions, t = feed(tm, t, "_")
    assert [type(a) for a in actions] == [EndOfTurn]


def test_update_settings_changes_barge_in_threshold_without_resetting_the_run() -> None:
    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    actions, t = feed(tm, 0.0, "SSS")
    assert actions == []
    tm.update_settings(VadSettings(barge_in_ms=60))
    actions, _ = feed(tm, t, "S")
    assert actions == [BargeIn(at_ms=80.0, onset_ms=0.0, speech_ms=80.0)]


def test_agent_starting_over_an_open_turn_is_interrupted_by_continued_speech() -> None:
    tm = TurnMachine(SETTINGS)
    actions, t = feed(tm, 0.0, "S" * 5)
    assert [type(a) for a in actions] == [SpeechStarted]
    tm.agent_started(t)
    # The turn stays open; the caller keeps talking over the agent → barge-in.
    actions, t = feed(tm, t, "S" * 5)
    assert actions == [BargeIn(at_ms=200.0, onset_ms=100.0, speech_ms=100.0)]
    actions, t = feed(tm, t, "_" * 25)
    assert actions == [EndOfTurn(at_ms=700.0, speech_ms=200.0, silence_ms=500.0, onset_ms=0.0)]


def test_turn_that_ends_while_agent_plays_hands_the_floor_to_the_agent() -> None:
    tm = TurnMachine(SETTINGS)
    _, t = feed(tm, 0.0, "S" * 5)
    tm.agent_started(t)
    actions, t = feed(tm, t, "SS" + "_" * 25)
    assert [type(a) for a in actions] == [EndOfTurn]
    assert tm.state is TurnState.AGENT_SPEAKING and tm.agent_playing


def test_speech_before_the_agent_started_does_not_count_toward_barge_in() -> None:
    tm = TurnMachine(SETTINGS)
    _, t = feed(tm, 0.0, "SS")  # 40 ms, below start_ms
    tm.agent_started(t)
    actions, t = feed(tm, t, "SSSS")  # 80 ms after the agent started
    assert actions == []
    actions, _ = feed(tm, t, "S")
    assert [type(a) for a in actions] == [BargeIn]
    assert actions[0].onset_ms == 40.0


def test_time_never_runs_backwards() -> None:
    tm = TurnMachine(SETTINGS)
    _, t = feed(tm, 0.0, "S" * 5)
    assert list(tm.tick(t + 600.0)) != []
    # A late burst stamped in the past is taken as "now": no negative silence.
    actions = list(tm.vad(t, True, W)) + list(tm.vad(t + 1, True, W)) + list(tm.vad(t + 2, True, W))
    assert [type(a) for a in actions] == [SpeechStarted]
    assert actions[0].at_ms == t + 600.0


def test_reset_and_validation() -> None:
    tm = TurnMachine(SETTINGS)
    feed(tm, 0.0, "S" * 5)
    tm.agent_started(200.0)
    tm.reset()
    assert tm.state is TurnState.LISTENING and not tm.agent_playing
    assert list(tm.tick(0.0)) == []
    with pytest.raises(ValueError):
        TurnMachine(SETTINGS, gap_ms=-1)


# Segments, expanded by the test: runs of speech/silence windows (window-paced
# or in a burst with one stamp), clock-only stretches, agent edges, reloads.
segments = st.lists(
    st.one_of(
        st.tuples(st.just("speech"), st.integers(1, 12), st.sampled_from([10.0, 20.0, 32.0])),
        st.tuples(st.just("silence"), st.integers(1, 40), st.sampled_from([10.0, 20.0, 32.0])),
        st.tuples(st.just("burst"), st.integers(1, 8), st.booleans()),
        st.tuples(st.just("quiet"), st.integers(1, 50)),
        st.tuples(st.just("jump"), st.floats(0, 2000)),
        st.tuples(st.just("agent"), st.booleans()),
        st.tuples(st.just("settings"), st.integers(0, 300), st.integers(100, 1000)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(segments)
def test_invariants_under_arbitrary_event_sequences(segs: list[tuple]) -> None:
    tm = TurnMachine(SETTINGS)
    cfg = SETTINGS
    t = 0.0
    turn_open = False
    last_at = float("-inf")

    def check(actions: tuple, agent_before: bool) -> None:
        nonlocal turn_open, last_at
        assert len(actions) <= 1
        for action in actions:
            assert action.at_ms >= last_at
            last_at = action.at_ms
            assert action.at_ms >= action.onset_ms
            if isinstance(action, SpeechStarted):
                assert not turn_open and not agent_before
                assert action.speech_ms >= cfg.start_ms - 1e-6
                turn_open = True
            elif isinstance(action, BargeIn):
                assert agent_before and not tm.agent_playing
                # The window nearest barge_in_ms: at most half a (≤ 32 ms) window short.
                assert action.speech_ms >= cfg.barge_in_ms - 16 - 1e-6
                turn_open = True
            else:
                assert turn_open
                assert action.silence_ms >= cfg.stop_ms - 1e-6
                turn_open = False
        assert (tm.state is TurnState.CALLER_SPEAKING) == turn_open
        if not turn_open:
            expected = TurnState.AGENT_SPEAKING if tm.agent_playing else TurnState.LISTENING
            assert tm.state is expected

    for seg in segs:
        kind = seg[0]
        if kind == "settings":
            cfg = VadSettings(start_ms=seg[1], barge_in_ms=seg[1], stop_ms=seg[2])
            tm.update_settings(cfg)
        elif kind == "agent":
            (tm.agent_started if seg[1] else tm.agent_stopped)(t)
            check((), tm.agent_playing)
        elif kind == "jump":
            t += seg[1]
        elif kind == "quiet":
            for _ in range(seg[1]):
                t += 20.0
                agent = tm.agent_playing
                check(tm.tick(t), agent)
        elif kind == "burst":
            for _ in range(seg[1]):
                agent = tm.agent_playing
                check(tm.vad(t, seg[2], 20.0), agent)
        else:
            for _ in range(seg[1]):
                t += seg[2]
                agent = tm.agent_playing
                check(tm.vad(t, kind == "speech", seg[2]), agent)
                agent = tm.agent_playing
                check(tm.tick(t), agent)


def _silero_like(tm: TurnMachine, t: float, pattern: str, window: float = 32.0
                 ) -> tuple[list, float]:
    """'v' voiced but not speech (above the energy gate), 's' speech, '.' gated silence."""
    out: list = []
    for ch in pattern:
        t += window
        out += tm.vad(t, ch == "s", window, voiced=ch != ".")
    return out, t


def test_voiced_lead_in_is_credited_to_a_barge_in_run() -> None:
    settings = VadSettings(barge_in_ms=100)
    plain, credited = TurnMachine(settings), TurnMachine(settings)
    for tm in (plain, credited):
        tm.agent_started(0.0)
    # The model warms up for three windows before it says speech.
    late, _ = _silero_like(plain, 0.0, "...ssss")
    early, _ = _silero_like(credited, 0.0, "vvvssss")
    late_at = next(a.at_ms for a in late if isinstance(a, BargeIn))
    early_at = next(a.at_ms for a in early if isinstance(a, BargeIn))
    assert early_at < late_at
    onset = next(a.onset_ms for a in early if isinstance(a, BargeIn))
    assert onset == pytest.approx(96 - 50)  # back-dated by the credit (≤ barge_in/2)


def test_voiced_noise_alone_or_with_one_speech_window_does_not_barge_in() -> None:
    tm = TurnMachine(VadSettings(barge_in_ms=100))
    tm.agent_started(0.0)
    actions, t = _silero_like(tm, 0.0, "vvvvvvvvvv")  # a cough, line noise
    assert actions == []
    actions, t = _silero_like(tm, t, "vvvs.....")  # noise and a blip
    assert not any(isinstance(a, BargeIn) for a in actions)
    assert tm.state is TurnState.AGENT_SPEAKING


def test_barge_in_is_decided_at_the_window_nearest_barge_in_ms() -> None:
    """20 ms windows (webrtc): 5 windows = 100 ms. 32 ms windows (silero): 3 = 96 ms, not
    4 = 128 ms; a run two windows long (64 ms) never interrupts."""
    for window, needed in ((20.0, 5), (32.0, 3), (10.0, 10)):
        tm = TurnMachine(SETTINGS)
        tm.agent_started(0.0)
        actions, t = feed(tm, 0.0, "S" * (needed - 1), window)
        assert actions == [], window
        actions, t = feed(tm, t, "S", window)
        assert [type(a) for a in actions] == [BargeIn], window
        assert actions[0].speech_ms == needed * window
    tm = TurnMachine(SETTINGS)
    tm.agent_started(0.0)
    actions, _ = feed(tm, 0.0, "SS" + "_" * 10 + "SS", 32.0)
    assert actions == []  # two short runs: neither reaches 100 ms
