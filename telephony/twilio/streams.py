"""Twilio Media Streams (bidirectional, `<Connect><Stream>`) as a sans-I/O protocol.

`StreamProtocol` is the server side: the WebSocket shell feeds it every text
frame and acts on the small event it returns. It never raises on bad input,
because a peer that can make us raise can make us drop a live call; instead it
counts the fault by kind (for `/metrics`) and sets `fatal` once the peer has
spent its error budget, and the shell hangs up.

`Outbound` builds what we send to Twilio. Twilio's part of the wire (what it
sends, and reading what we send) is a dev tool, not product code: it lives in
`ops.dev.twilio_side`, written against the same facts and checked against this
module by the tests.

Wire facts (checked against Twilio's "Media Streams - WebSocket Messages"):
`sequenceNumber`, `media.chunk` and `media.timestamp` arrive as JSON *strings*
("3"), so the decoder runs in msgspec's lax mode, which turns numeric strings
into ints and also accepts plain numbers. Media is 8 kHz μ-law, base64, usually
160 bytes (20 ms) per message but not always, and silent chunks may be skipped,
which the timestamps reveal (`Media.gap_ms`).

The media path is the hot path (50 messages/s per call, tens of thousands per
core): one preconstructed decoder, no dicts, no logging, binascii for base64.
"""

from __future__ import annotations

import binascii
import enum
from typing import Final

import msgspec

# ---------------------------------------------------------------------------
# Inbound wire shapes (Twilio → us). Unknown fields are ignored on purpose:
# Twilio adds fields over time and must not break live calls by doing so.
# ---------------------------------------------------------------------------


class _MediaFormat(msgspec.Struct, rename="camel"):
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


class _StartBody(msgspec.Struct, rename="camel"):
    stream_sid: str = ""
    account_sid: str = ""
    call_sid: str = ""
    tracks: list[str] = []
    custom_parameters: dict[str, str] = {}
    media_format: _MediaFormat = msgspec.field(default_factory=_MediaFormat)


class _MediaBody(msgspec.Struct, gc=False):
    # msgspec decodes base64 into bytes inside the JSON decoder (~1 µs per
    # message less than a `str` then `binascii.a2b_base64`, measured), with the
    # same strictness as `a2b_base64(strict_mode=True)`; a payload it refuses
    # fails the whole decode and takes the slow path (`_MediaText`).
    payload: bytes
    track: str = "inbound"
    chunk: int = 0
    timestamp: int = 0


class _MediaBodyText(msgspec.Struct, gc=False):
    payload: str
    track: str = "inbound"
    chunk: int = 0
    timestamp: int = 0


class _DtmfBody(msgspec.Struct):
    digit: str
    track: str = "inbound_track"


class _MarkBody(msgspec.Struct):
    name: str


class _StopBody(msgspec.Struct, rename="camel"):
    account_sid: str = ""
    call_sid: str = ""


class _In(msgspec.Struct, tag_field="event", rename="camel"):
    pass


class _InConnected(_In, tag="connected"):
    protocol: str = ""
    version: str = ""


class _InStart(_In, tag="start"):
    start: _StartBody
    sequence_number: int = 0
    stream_sid: str = ""


class _InMedia(_In, tag="media", gc=False):
    media: _MediaBody
    sequence_number: int = 0
    stream_sid: str = ""


class _InDtmf(_In, tag="dtmf"):
    dtmf: _DtmfBody
    sequence_number: int = 0
    stream_sid: str = ""


class _InMark(_In, tag="mark"):
    mark: _MarkBody
    sequence_number: int = 0
    stream_sid: str = ""


class _InStop(_In, tag="stop"):
    stop: _StopBody = msgspec.field(default_factory=_StopBody)
    sequence_number: int = 0
    stream_sid: str = ""


_InboundMessage = _InConnected | _InStart | _InMedia | _InDtmf | _InMark | _InStop
_INBOUND_EVENTS: Final = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})


class _EventProbe(msgspec.Struct):
    """Second look at a message the typed decoder refused: which event was it?"""

    event: object = None


class _MediaText(msgspec.Struct, rename="camel"):
    """A media message whose payload the fast decoder refused, payload as text."""

    event: str
    media: _MediaBodyText
    sequence_number: int = 0
    stream_sid: str = ""


_inbound_decoder: Final = msgspec.json.Decoder(_InboundMessage, strict=False)
_media_text_decoder: Final = msgspec.json.Decoder(_MediaText, strict=False)
_probe_decoder: Final = msgspec.json.Decoder(_EventProbe)

# ---------------------------------------------------------------------------
# Events handed to the shell
# ---------------------------------------------------------------------------


class MediaFormat(msgspec.Struct, frozen=True):
    encoding: str
    sample_rate: int
    channels: int


class Connected(msgspec.Struct, frozen=True):
    protocol: str
    version: str


class Start(msgspec.Struct, frozen=True):
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: list[str]
    custom_parameters: dict[str, str]
    media_format: MediaFormat
    sequence_number: int


class Media(msgspec.Struct, gc=False):
    """Caller audio. `gap_ms` is audio Twilio skipped (silence) before this chunk,
    read from the timestamps, so the media layer can keep its clock honest."""

    audio: bytes
    timestamp_ms: int
    gap_ms: int
    chunk: int
    sequence_number: int


class Dtmf(msgspec.Struct, frozen=True):
    digit: str
    sequence_number: int


class Mark(msgspec.Struct, frozen=True):
    """A mark we sent came back: the audio before it was played, or cleared."""

    name: str
    sequence_number: int


class Stop(msgspec.Struct, frozen=True):
    account_sid: str
    call_sid: str
    sequence_number: int


class ProtocolError(msgspec.Struct, frozen=True):
    kind: str
    detail: str
    fatal: bool


Event = Connected | Start | Media | Dtmf | Mark | Stop | ProtocolError


class StreamState(enum.StrEnum):
    IDLE = "idle"  # socket open, nothing received
    CONNECTED = "connected"  # `connected` seen
    STARTED = "started"  # `start` seen: media flows
    STOPPED = "stopped"  # `stop` seen: the call is over


# Every error kind, so counters exist (at 0) before the first fault.
OVERSIZED: Final = "oversized"
MALFORMED_JSON: Final = "malformed_json"
INVALID_MESSAGE: Final = "invalid_message"  # known event, wrong/missing fields
UNKNOWN_EVENT: Final = "unknown_event"
BAD_BASE64: Final = "bad_base64"
ODD_PAYLOAD: Final = "odd_payload"  # empty, or more than 1 s of audio
MEDIA_BEFORE_START: Final = "media_before_start"  # media, dtmf or mark before start
DUPLICATE_START: Final = "duplicate_start"
OUT_OF_ORDER: Final = "out_of_order"  # `connected` after connected/start
AFTER_STOP: Final = "after_stop"
WRONG_STREAM_SID: Final = "wrong_stream_sid"
UNSUPPORTED_FORMAT: Final = "unsupported_format"
ERROR_KINDS: Final = (
    OVERSIZED,
    MALFORMED_JSON,
    INVALID_MESSAGE,
    UNKNOWN_EVENT,
    BAD_BASE64,
    ODD_PAYLOAD,
    MEDIA_BEFORE_START,
    DUPLICATE_START,
    OUT_OF_ORDER,
    AFTER_STOP,
    WRONG_STREAM_SID,
    UNSUPPORTED_FORMAT,
)

SAMPLE_RATE: Final = 8000
# μ-law is one byte per sample, so any length is whole samples; a chunk of more
# than a second is not something Twilio sends and would blow per-frame budgets.
MAX_PAYLOAD_BYTES: Final = SAMPLE_RATE
_DTMF_DIGITS: Final = frozenset("0123456789*#ABCDabcd")


class StreamProtocol:
    """Server side of one Media Stream: frames in, events out, faults counted.

    `max_message_bytes` bounds a message before it is parsed (for `str` input
    it counts characters; the shell should also cap the WebSocket frame size).
    The peer turns `fatal` after `max_consecutive_errors` faults in a row, after
    `error_budget` faults in total, or at once for an unsupported audio format.
    Once fatal, input is still counted but the shell should close the socket.
    """

    __slots__ = (
        "_consecutive",
        "_error_budget",
        "_max_bytes",
        "_max_consecutive",
        "_next_ts",
        "account_sid",
        "call_sid",
        "custom_parameters",
        "error_total",
        "errors",
        "fatal",
        "ignored",
        "messages",
        "state",
        "stream_sid",
    )

    def __init__(
        self,
        max_message_bytes: int = 65_536,
        *,
        max_consecutive_errors: int = 20,
        error_budget: int = 200,
    ) -> None:
        if max_message_bytes < 256:
            raise ValueError("max_message_bytes must be at least 256")
        if max_consecutive_errors < 1 or error_budget < 1:
            raise ValueError("error limits must be at least 1")
        self._max_bytes = max_message_bytes
        self._max_consecutive = max_consecutive_errors
        self._error_budget = error_budget
        self._consecutive = 0
        self._next_ts = 0
        self.state = StreamState.IDLE
        self.stream_sid = ""
        self.call_sid = ""
        self.account_sid = ""
        self.custom_parameters: dict[str, str] = {}
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.error_total = 0
        self.messages = 0  # every call to receive()
        self.ignored = 0  # valid but not for us: media of the outbound track
        self.fatal = False

    # -- faults --------------------------------------------------------------

    def _fault(self, kind: str, detail: str = "", *, fatal: bool = False) -> ProtocolError:
        self.errors[kind] += 1
        self.error_total += 1
        self._consecutive += 1
        if (
            fatal
            or self._consecutive >= self._max_consecutive
            or self.error_total >= self._error_budget
        ):
            self.fatal = True
        return ProtocolError(kind, detail[:200], self.fatal)

    @staticmethod
    def _media_text(data: bytes | str, exc: Exception) -> _MediaText | None:
        """A media message refused only for its payload's base64, payload as text.

        Faults keep their order (before start, wrong stream, outbound track,
        then bad base64) by going through the same checks as the fast path.
        """
        if not isinstance(exc, msgspec.ValidationError) or "$.media.payload" not in str(exc):
            return None
        try:
            msg = _media_text_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        return msg if msg.event == "media" else None

    def _classify(self, data: bytes | str, exc: Exception) -> ProtocolError:
        """Slow path: tell malformed JSON from an unknown event from bad fields."""
        if not isinstance(exc, msgspec.ValidationError):
            return self._fault(MALFORMED_JSON, str(exc))
        try:
            event = _probe_decoder.decode(data).event
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._fault(INVALID_MESSAGE, str(exc))
        if isinstance(event, str) and event in _INBOUND_EVENTS:
            return self._fault(INVALID_MESSAGE, str(exc))
        return self._fault(UNKNOWN_EVENT, repr(event)[:64])

    # -- input ---------------------------------------------------------------

    def receive(self, data: bytes | str) -> Event | None:
        """Feed one WebSocket text frame; get the event it carries.

        Returns None for a message that is valid but needs no action (media of
        the outbound track), a `ProtocolError` for a fault; never raises.
        """
        self.messages += 1
        if len(data) > self._max_bytes:
            return self._fault(OVERSIZED, str(len(data)))
        try:
            msg = _inbound_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string.
            text = self._media_text(data, exc)
            if text is None:
                return self._classify(data, exc)
            msg = text

        if type(msg) is _InMedia or type(msg) is _MediaText:  # the hot path, first and flat
            if self.state is not StreamState.STARTED:
                if self.state is StreamState.STOPPED:
                    return self._fault(AFTER_STOP, "media")
                return self._fault(MEDIA_BEFORE_START)
            if msg.stream_sid != self.stream_sid:
                return self._fault(WRONG_STREAM_SID, msg.stream_sid[:64])
            body = msg.media
            if body.track.startswith("outbound"):
                self.ignored += 1
                self._consecutive = 0
                return None
            audio = body.payload
            if type(audio) is str:  # the slow path: the fast decoder refused it
                try:
                    audio = binascii.a2b_base64(audio, strict_mode=True)
                except ValueError:  # binascii.Error, or non-ASCII text
                    return self._fault(BAD_BASE64)
            size = len(audio)
            if size == 0 or size > MAX_PAYLOAD_BYTES:
                return self._fault(ODD_PAYLOAD, str(size))
            ts = body.timestamp
            gap = ts - self._next_ts
            self._next_ts = ts + size // 8
            self._consecutive = 0
            return Media(audio, ts, gap if gap > 0 else 0, body.chunk, msg.sequence_number)

        if self.state is StreamState.STOPPED:
            return self._fault(AFTER_STOP, type(msg).__name__)
        if type(msg) is _InStart:
            return self._start(msg)
        if type(msg) is _InConnected:
            if self.state is not StreamState.IDLE:
                return self._fault(OUT_OF_ORDER, "connected")
            self.state = StreamState.CONNECTED
            self._consecutive = 0
            return Connected(msg.protocol, msg.version)
        if type(msg) is _InStop:
            # A stop before start is still the peer hanging up: honour it.
            if self.state is StreamState.STARTED and msg.stream_sid != self.stream_sid:
                return self._fault(WRONG_STREAM_SID, msg.stream_sid[:64])
            self.state = StreamState.STOPPED
            self._consecutive = 0
            return Stop(msg.stop.account_sid, msg.stop.call_sid, msg.sequence_number)

        # dtmf or mark: only inside a started stream
        if self.state is not StreamState.STARTED:
            return self._fault(MEDIA_BEFORE_START, "mark" if type(msg) is _InMark else "dtmf")
        if msg.stream_sid != self.stream_sid:
            return self._fault(WRONG_STREAM_SID, msg.stream_sid[:64])
        if type(msg) is _InMark:
            self._consecutive = 0
            return Mark(msg.mark.name, msg.sequence_number)
        digit = msg.dtmf.digit
        if len(digit) != 1 or digit not in _DTMF_DIGITS:
            return self._fault(INVALID_MESSAGE, "dtmf digit " + repr(digit[:8]))
        self._consecutive = 0
        return Dtmf(digit, msg.sequence_number)

    def _start(self, msg: _InStart) -> Event:
        if self.state is StreamState.STARTED:
            return self._fault(DUPLICATE_START, msg.start.stream_sid[:64])
        body = msg.start
        sid = body.stream_sid or msg.stream_sid
        if not sid or (msg.stream_sid and msg.stream_sid != sid):
            return self._fault(INVALID_MESSAGE, "start without one streamSid")
        fmt = body.media_format
        if (fmt.encoding, fmt.sample_rate, fmt.channels) != ("audio/x-mulaw", SAMPLE_RATE, 1):
            return self._fault(
                UNSUPPORTED_FORMAT,
                f"{fmt.encoding[:32]} {fmt.sample_rate} Hz x{fmt.channels}",
                fatal=True,
            )
        self.state = StreamState.STARTED
        self.stream_sid = sid
        self.call_sid = body.call_sid
        self.account_sid = body.account_sid
        self.custom_parameters = body.custom_parameters
        self._consecutive = 0
        return Start(
            sid,
            body.account_sid,
            body.call_sid,
            body.tracks,
            body.custom_parameters,
            MediaFormat(fmt.encoding, fmt.sample_rate, fmt.channels),
            msg.sequence_number,
        )


# ---------------------------------------------------------------------------
# Outbound (us → Twilio)
# ---------------------------------------------------------------------------


def _json_str(value: str) -> bytes:
    """A JSON string literal, quotes included (escapes whatever needs it)."""
    return msgspec.json.encode(value)


class Outbound:
    """Encoders for what the server sends on one stream, in Twilio's exact shape.

    The per-stream prefix is built once, so a media message costs one base64
    and one join. Returns UTF-8 JSON bytes to be sent as a *text* frame
    (aiohttp: `ws.send_frame(data, WSMsgType.TEXT)`).
    """

    __slots__ = ("_clear", "_mark_prefix", "_media_prefix")

    def __init__(self, stream_sid: str) -> None:
        sid = _json_str(stream_sid)
        self._media_prefix = b'{"event":"media","streamSid":' + sid + b',"media":{"payload":"'
        self._mark_prefix = b'{"event":"mark","streamSid":' + sid + b',"mark":{"name":'
        self._clear = b'{"event":"clear","streamSid":' + sid + b"}"

    def media(self, ulaw: bytes) -> bytes:
        return b"".join((self._media_prefix, binascii.b2a_base64(ulaw, newline=False), b'"}}'))

    def mark(self, name: str) -> bytes:
        return b"".join((self._mark_prefix, _json_str(name), b"}}"))

    def clear(self) -> bytes:
        return self._clear
