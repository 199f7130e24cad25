"""Turn-taking: who holds the floor, decided from VAD windows and the clock.

A sans-I/O state machine, one per call. It never sees audio, only VAD
decisions placed on a millisecond timeline, clock ticks and the playout's
"agent started / stopped" edges, and it answers with at most one action per
input. The engine decides what an action means for the wire (clear, marks,
brain commit); this module only decides *when*.

Speech is measured in *runs*: consecutive speech windows whose silent gaps do
not exceed `gap_ms` (one window at least). A run's length is the speech it
holds, not its span, so a cough, an "uh-huh" or isolated windows that the VAD
mistook for speech add little and die when the gap grows. Runs are judged on
audio evidence (the next window), never by the clock, because VAD windows lag
the clock by up to a window plus a tick. Only the end of a caller's turn is
timed by the clock: Twilio may skip silent chunks, and the caller must still
get an answer.

All inputs take `now_ms`; time never runs backwards inside the machine (an
earlier stamp is taken as the latest one seen), so a burst of late frames can
not undo a decision already made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from media.settings import VadSettings

# Floating-point slack for comparing window edges computed from sample counts.
_EPS = 1e-6


class TurnState(enum.Enum):
    # Nobody speaks (as far as the machine knows).
    LISTENING = "listening"
    # The caller holds the floor; a turn is open and ends with EndOfTurn.
    CALLER_SPEAKING = "caller_speaking"
    # Agent audio is playing and the caller has not taken the floor.
    AGENT_SPEAKING = "agent_speaking"


@dataclass(slots=True, frozen=True)
class SpeechStarted:
    """The caller's speech run reached `start_ms`: a caller turn is open."""

    at_ms: float
    # Start of the first speech window of the run.
    onset_ms: float
    speech_ms: float


@dataclass(slots=True, frozen=True)
class EndOfTurn:
    """`stop_ms` of silence after the caller's turn: time to answer."""

    at_ms: float
    # Speech (not span) the turn held.
    speech_ms: float
    # Silence since the end of the last speech window (the decision latency).
    silence_ms: float
    onset_ms: float


@dataclass(slots=True, frozen=True)
class BargeIn:
    """Caller speech over the agent lasted `barge_in_ms`: the agent must stop.

    `at_ms - onset_ms` is the barge-in latency as the caller experiences it.
    """

    at_ms: float
    onset_ms: float
    speech_ms: float


TurnAction = SpeechStarted | EndOfTurn | BargeIn
Actions = tuple[TurnAction, ...]
_NONE: Actions = ()


class TurnMachine:
    """Per-call turn-taking state; see the module docstring for the model.

    - LISTENING: a run of `start_ms` speech → `SpeechStarted`, CALLER_SPEAKING.
    - CALLER_SPEAKING: `stop_ms` of silence → `EndOfTurn`, then AGENT_SPEAKING
      if agent audio is playing, else LISTENING.
    - whenever agent audio plays (AGENT_SPEAKING, or a caller turn the agent
      started talking over): a run of `barge_in_ms` speech that began after the
      agent started → `BargeIn`; the agent is taken as stopped and the caller
      holds the floor (CALLER_SPEAKING, which ends with EndOfTurn as usual).
      A shorter run is forgotten and, over the agent, opens no caller turn.
    """

    __slots__ = (
        "_agent",
        "_gap_ms",
        "_last_speech_end",
        "_lead_in",
        "_now",
        "_run_credit",
        "_run_onset",
        "_run_speech",
        "_settings",
        "_state",
        "_turn_onset",
        "_turn_speech",
    )

    def __init__(self, settings: VadSettings, *, gap_ms: float = 40.0) -> None:
        """`gap_ms`: silence a run survives (at least one window, whatever this says)."""
        if gap_ms < 0:
            raise ValueError("gap_ms must not be negative")
        self._settings = settings
        self._gap_ms = gap_ms
        self._state = TurnState.LISTENING
        self._agent = False
        self._now = float("-inf")
        # Current run; _run_onset is None when there is none.
        self._run_onset: float | None = None
        self._run_speech = 0.0
        self._run_credit = 0.0  # voiced lead-in the run was credited with
        # End of the latest speech window (run or turn).
        self._last_speech_end = float("-inf")
        # Voiced (above the energy gate) but not-yet-speech ms right before now.
        self._lead_in = 0.0
        # Open caller turn (CALLER_SPEAKING).
        self._turn_onset = 0.0
        self._turn_speech = 0.0

    # -- observers -------------------------------------------------------

    @property
    def state(self) -> TurnState:
        return self._state

    @property
    def agent_playing(self) -> bool:
        return self._agent

    @property
    def settings(self) -> VadSettings:
        return self._settings

    @property
    def run_speech_ms(self) -> float:
        """Speech in the current (not yet decided) run; 0 if none."""
        return self._run_speech if self._run_onset is not None else 0.0

    # -- inputs ----------------------------------------------------------

    def update_settings(self, settings: VadSettings) -> None:
        """Apply at once, mid-turn: a running silence is judged by the new stop_ms."""
        self._settings = settings

    def vad(self, now_ms: float, is_speech: bool, window_ms: float,
            voiced: bool = False) -> Actions:
        """One VAD decision for the window ending at `now_ms`.

        `voiced`: the window passed the energy gate though the model said no.
        A model needs a few windows to warm up to a speech onset (Silero: about
        100 ms); the voiced windows right before its first "yes" were most
        likely the onset, so a new run is credited with up to half of
        `barge_in_ms` of them. The model must still say "speech" at least once,
        so a cough or line noise alone never starts a turn or barges in.
        """
        now = self._clamp(now_ms)
        if is_speech:
            return self._speech(now, window_ms)
        self._lead_in = self._lead_in + window_ms if voiced else 0.0
        # Silence: evidence that a run is over once the gap is too long.
        if self._run_onset is not None and now - self._last_speech_end > self._gap(window_ms):
            self._run_onset = None
            self._run_speech = 0.0
        if self._state is TurnState.CALLER_SPEAKING:
            return self._check_end(now)
        return _NONE

    def tick(self, now_ms: float) -> Actions:
        """Clock tick: ends the caller's turn even when no audio arrives."""
        now = self._clamp(now_ms)
        if self._state is TurnState.CALLER_SPEAKING:
            return self._check_end(now)
        return _NONE

    def agent_started(self, now_ms: float) -> None:
        """Agent audio began to play; only speech from now on may barge in."""
        self._clamp(now_ms)
        if self._agent:
            return
        self._agent = True
        self._run_onset = None
        self._run_speech = 0.0
        if self._state is TurnState.LISTENING:
            self._state = TurnState.AGENT_SPEAKING

    def agent_stopped(self, now_ms: float) -> None:
        """Agent audio ran dry (or was cut); a run in progress carries on."""
        self._clamp(now_ms)
        if not self._agent:
            return
        self._agent = False
        if self._state is TurnState.AGENT_SPEAKING:
            self._state = TurnState.LISTENING

    def reset(self) -> None:
        """Forget everything but the settings (e.g. the call's leg was replaced)."""
        self._state = TurnState.LISTENING
        self._agent = False
        self._now = float("-inf")
        self._run_onset = None
        self._run_speech = 0.0
        self._last_speech_end = float("-inf")
        self._lead_in = 0.0
        self._turn_onset = 0.0
        self._turn_speech = 0.0

    # -- internals -------------------------------------------------------

    def _clamp(self, now_ms: float) -> float:
        if now_ms < self._now:
            return self._now
        self._now = now_ms
        return now_ms

    def _gap(self, window_ms: float) -> float:
        gap = self._gap_ms
        return (window_ms if window_ms > gap else gap) + _EPS

    def _speech(self, now: float, window_ms: float) -> Actions:
        start = now - window_ms
        if self._run_onset is None or start - self._last_speech_end > self._gap(window_ms):
            credit = min(self._lead_in, self._settings.barge_in_ms / 2)
            self._run_onset = start - credit
            self._run_speech = credit
            self._run_credit = credit
        self._lead_in = 0.0
        self._run_speech += window_ms
        self._last_speech_end = now
        state = self._state
        settings = self._settings
        if state is TurnState.CALLER_SPEAKING:
            self._turn_speech += window_ms
            if self._agent and self._barge_due(window_ms):
                return self._barge_in(now)
            return _NONE
        if state is TurnState.AGENT_SPEAKING:
            if self._barge_due(window_ms):
                self._turn_onset = self._run_onset
                self._turn_speech = self._run_speech
                self._state = TurnState.CALLER_SPEAKING
                return self._barge_in(now)
            return _NONE
        # LISTENING
        if self._run_speech + _EPS >= settings.start_ms:
            self._turn_onset = self._run_onset
            self._turn_speech = self._run_speech
            self._state = TurnState.CALLER_SPEAKING
            return (SpeechStarted(now, self._run_onset, self._run_speech),)
        return _NONE

    def _barge_due(self, window_ms: float) -> bool:
        """The run is long enough to cut the agent.

        `barge_in_ms` of speech (lead-in credit included), or the window
        nearest `barge_in_ms` rather than the first past it, once the model
        itself called more than one window of the run speech. With 32 ms
        windows (silero) "past 100 ms" is often 128 ms, a window more than
        asked for and than webrtc's 5 × 20 ms; nearest is 96 ms. A run whose
        model evidence is a single window (voiced noise and one stray "speech"
        window) still needs the full `barge_in_ms`, as before.
        """
        run = self._run_speech + _EPS
        barge_in_ms = self._settings.barge_in_ms
        if run >= barge_in_ms:
            return True
        return run >= barge_in_ms - window_ms / 2 and run - self._run_credit > window_ms

    def _barge_in(self, now: float) -> Actions:
        onset = self._run_onset if self._run_onset is not None else now
        action = BargeIn(now, onset, self._run_speech)
        self._agent = False
        # The run is spent; a further barge-in needs the agent to start again.
        self._run_onset = None
        self._run_speech = 0.0
        return (action,)

    def _check_end(self, now: float) -> Actions:
        silence = now - self._last_speech_end
        if silence + _EPS < self._settings.stop_ms:
            return _NONE
        action = EndOfTurn(now, self._turn_speech, silence, self._turn_onset)
        self._state = TurnState.AGENT_SPEAKING if self._agent else TurnState.LISTENING
        self._turn_speech = 0.0
        self._run_onset = None
        self._run_speech = 0.0
        return (action,)
