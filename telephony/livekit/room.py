"""What the leg needs from a LiveKit room, and the adapter over the real `livekit.rtc`.

The leg talks to a `RoomPort` only: join and publish the agent's track, hand it 48 kHz
frames, ask how much is still queued, clear the queue, send DTMF, leave. The room
talks back through `RoomEvents`: the callee's audio frames, DTMF, the callee's
`sip.callStatus` attribute, and the room going away. Tests drive the leg through a
fake port with the same surface; `LiveKitRoom` is the real one, over `rtc.Room`,
`rtc.AudioSource` (whose own queue plays the frames out in real time) and
`rtc.AudioStream` (the callee's track, resampled by the SDK to 48 kHz mono).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

log = logging.getLogger("leadline.livekit")

# The callee's frames waiting for us inside the SDK's stream: 1 s of 10 ms frames.
INBOUND_CAPACITY = 100
SIP_CALL_STATUS = "sip.callStatus"


class RoomEvents(Protocol):
    """The leg's side: called from the room's callbacks, never blocking."""

    def on_audio(self, data: bytes | memoryview, sample_rate: int, channels: int,
                 samples: int) -> None: ...
    def on_dtmf(self, digit: str) -> None: ...
    def on_call_status(self, status: str) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...


class RoomPort(Protocol):
    """The room's side, as the leg uses it."""

    async def connect(self, events: RoomEvents) -> None: ...
    async def capture_frame(self, pcm16: bytes, samples: int) -> None: ...
    def queued_ms(self) -> float: ...
    def clear_queue(self) -> None: ...
    async def publish_dtmf(self, code: int, digit: str) -> None: ...
    async def disconnect(self) -> None: ...


class LiveKitRoom:
    """`RoomPort` over `livekit.rtc.Room` for one call; the callee is `callee_identity`."""

    def __init__(self, url: str, token: str, callee_identity: str, *, sample_rate: int = 48000,
                 queue_ms: int = 400) -> None:
        self.url = url
        self._token = token
        self.callee_identity = callee_identity
        self.sample_rate = sample_rate
        self.queue_ms = queue_ms
        self._room: Any = None
        self._source: Any = None
        self._events: RoomEvents | None = None
        self._readers: set[asyncio.Task[None]] = set()

    async def connect(self, events: RoomEvents) -> None:
        from livekit import rtc

        self._events = events
        room = self._room = rtc.Room()
        room.on("track_subscribed", self._track_subscribed)
        room.on("participant_attributes_changed", self._attributes_changed)
        room.on("participant_disconnected", self._participant_left)
        room.on("sip_dtmf_received", self._dtmf)
        room.on("disconnected", self._disconnected)
        await room.connect(self.url, self._token, rtc.RoomOptions(auto_subscribe=True))
        track = rtc.LocalAudioTrack.create_audio_track("agent", self.open_source())
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        callee = room.remote_participants.get(self.callee_identity)
        if callee is not None:  # joined before us: its state and tracks are already there
            status = callee.attributes.get(SIP_CALL_STATUS)
            if status:
                events.on_call_status(status)
            for publication in callee.track_publications.values():
                if publication.track is not None:
                    self._track_subscribed(publication.track, publication, callee)

    def open_source(self) -> Any:
        """The agent's `rtc.AudioSource`. It plays its queue out in real time whether or
        not it is published yet, so the audio path can run before (or without) a room."""
        from livekit import rtc

        if self._source is None:
            self._source = rtc.AudioSource(self.sample_rate, 1, queue_size_ms=self.queue_ms)
        return self._source

    def _track_subscribed(self, track: Any, publication: Any, participant: Any) -> None:
        from livekit import rtc

        if participant.identity != self.callee_identity or track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        task = asyncio.get_running_loop().create_task(self._read(track))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read(self, track: Any) -> None:
        from livekit import rtc

        stream = rtc.AudioStream.from_track(track=track, sample_rate=self.sample_rate,
                                            num_channels=1, capacity=INBOUND_CAPACITY)
        try:
            async for event in stream:
                frame = event.frame
                if self._events is not None:
                    self._events.on_audio(frame.data.cast("B"), frame.sample_rate,
                                          frame.num_channels, frame.samples_per_channel)
        finally:
            await stream.aclose()

    def _attributes_changed(self, changed: dict[str, str], participant: Any) -> None:
        status = changed.get(SIP_CALL_STATUS)
        if status and participant.identity == self.callee_identity and self._events:
            self._events.on_call_status(status)

    def _participant_left(self, participant: Any) -> None:
        if participant.identity == self.callee_identity and self._events is not None:
            self._events.on_call_status("hangup")

    def _dtmf(self, dtmf: Any) -> None:
        participant = getattr(dtmf, "participant", None)
        if self._events is not None and (participant is None
                                         or participant.identity == self.callee_identity):
            self._events.on_dtmf(str(dtmf.digit))

    def _disconnected(self, reason: Any) -> None:
        if self._events is not None:
            self._events.on_disconnected(str(reason))

    async def capture_frame(self, pcm16: bytes, samples: int) -> None:
        from livekit import rtc

        await self._source.capture_frame(rtc.AudioFrame(pcm16, self.sample_rate, 1, samples))

    def queued_ms(self) -> float:
        return 0.0 if self._source is None else self._source.queued_duration * 1000.0

    def clear_queue(self) -> None:
        if self._source is not None:
            self._source.clear_queue()

    async def publish_dtmf(self, code: int, digit: str) -> None:
        await self._room.local_participant.publish_dtmf(code=code, digit=digit)

    async def disconnect(self) -> None:
        for task in list(self._readers):
            task.cancel()
        if self._room is not None:
            with contextlib.suppress(Exception):
                await self._room.disconnect()
        if self._source is not None:
            with contextlib.suppress(Exception):
                await self._source.aclose()
