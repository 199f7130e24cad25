"""The LiveKit SIP leg: outbound (and inbound) calls through a LiveKit room.

- `settings`: the `[livekit]` section.
- `sip`: `CreateSIPParticipant` through the official `livekit-api` Twirp client and
  what its SIP failures mean for a dial (busy, no answer, failed).
- `audio`: the leg's edge: 48 kHz PCM16 from the room ⇄ 8 kHz μ-law for the engine.
- `room`: the small protocol the leg needs from a room, and its adapter over
  `livekit.rtc.Room`.
- `leg`: `LiveKitLeg`, a `telephony.call.Leg` that plays audio itself and reports
  checkpoints from its own playout position.
- `session`: one call from dial to hang-up: dial, join, run the call, outcome.
"""
