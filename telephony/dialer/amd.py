"""Our own answering-machine detection on a live outbound call, where the carrier's is
missing or undecided.

LiveKit SIP has no AMD; Twilio's async AMD says `unknown` on a share of calls. For those
the callee's first seconds go through `agents.voicemail.MachineDetector` (the beep, the
shape of the first turn, recorder phrases in the transcript), and its verdicts are
delivered in Twilio's vocabulary (`twilio_answered_by`), so the dialer's existing AMD
handling (`OutboundCalls.answered_by`: the voicemail drop after the beep or the end of
the greeting) acts on them unchanged.

On a Twilio call the detector listens from the answer but holds its verdicts until
Twilio says `unknown` (`arm`): Twilio's own `human` or `machine_*` ends it unheard. On a
LiveKit call it is armed from the start. Either way it stops listening once it has said
when to speak, or after `listen_ms` of audio: the per-frame cost (a μ-law decode, an
energy sum, an FFT on loud frames; ~0.1 ms) is paid only in a call's first seconds.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.voicemail import AmdEvent, MachineDetector, twilio_answered_by

# Twilio's DetectMessageEnd gives up on a greeting after 30 s (MachineDetectionTimeout);
# a recorder that has not beeped nor paused by then is not waited for either.
LISTEN_MS = 30_000


class OwnAmd:
    """One call's detector and the rule for when its verdicts count."""

    __slots__ = ("_deliver", "armed", "detector", "listen_ms", "listening", "pending")

    def __init__(self, deliver: Callable[[str], None], *, armed: bool,
                 detector: MachineDetector | None = None, listen_ms: int = LISTEN_MS) -> None:
        self._deliver = deliver
        self.armed = armed
        self.detector = detector or MachineDetector()
        self.listen_ms = listen_ms
        self.listening = True
        # The last verdict heard before arming, in Twilio's vocabulary.
        self.pending: str | None = None

    def frame(self, ulaw_frame: bytes) -> None:
        """One 20 ms frame of the callee (the call's audio tap)."""
        events = self.detector.feed_ulaw(ulaw_frame)
        if events:
            self._events(events)
        if self.detector.spoken or self.detector.t_ms >= self.listen_ms:
            self.listening = False

    def transcript(self, text: str) -> None:
        """A final transcript of the callee."""
        if self.listening:
            self._events(self.detector.feed_transcript(text))

    def arm(self) -> None:
        """The carrier could not tell (Twilio's `unknown`): our verdicts count from now,
        the latest one heard so far at once."""
        if self.armed:
            return
        self.armed = True
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._deliver(pending)

    def _events(self, events: tuple[AmdEvent, ...]) -> None:
        for event in events:
            answered_by = twilio_answered_by(event)
            if answered_by is None:
                continue
            if self.armed:
                self._deliver(answered_by)
            else:
                self.pending = answered_by
