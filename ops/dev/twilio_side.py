"""Twilio's side of a Media Stream, for the `sim call` stand-in and the load generator.

The server's protocol (`telephony.twilio.streams`) reads what Twilio sends and
writes what Twilio reads; this is the mirror image, kept out of the product
path: `TwilioSide` produces Twilio's messages, numbered and string-typed as
Twilio's are, and `parse_server` reads what a server sends "to Twilio". The
tests run both ends against each other, so each is checked by the other.

The media message is a `%` template (`TWILIO_MEDIA`) rather than an encoder
call, because the load generator renders tens of thousands per second and must
stay cheaper per frame than the server it measures.
"""

from __future__ import annotations

import binascii
from typing import Final

import msgspec

from telephony.twilio.streams import (
    BAD_BASE64,
    INVALID_MESSAGE,
    MALFORMED_JSON,
    OVERSIZED,
    SAMPLE_RATE,
    UNKNOWN_EVENT,
)


def _json_str(value: str) -> bytes:
    """A JSON string literal, quotes included (escapes whatever needs it)."""
    return msgspec.json.encode(value)


class _EventProbe(msgspec.Struct):
    """Second look at a message the typed decoder refused: which event was it?"""

    event: object = None


_probe_decoder: Final = msgspec.json.Decoder(_EventProbe)



class _OutMediaFormat(msgspec.Struct, rename="camel"):
    encoding: str
    sample_rate: int
    channels: int


class _OutStartBody(msgspec.Struct, rename="camel"):
    account_sid: str
    stream_sid: str
    call_sid: str
    tracks: list[str]
    media_format: _OutMediaFormat
    custom_parameters: dict[str, str]


class _OutStart(msgspec.Struct, rename="camel"):
    event: str
    sequence_number: str
    start: _OutStartBody
    stream_sid: str


TWILIO_MEDIA: Final = (
    b'{"event":"media","sequenceNumber":"%d","media":{"track":"inbound",'
    b'"chunk":"%d","timestamp":"%d","payload":"%b%b'
)
_TWILIO_DTMF: Final = (
    b'{"event":"dtmf","streamSid":%b,"sequenceNumber":"%d",'
    b'"dtmf":{"track":"inbound_track","digit":%b}}'
)
_TWILIO_MARK: Final = b'{"event":"mark","sequenceNumber":"%d","streamSid":%b,"mark":{"name":%b}}'
_TWILIO_STOP: Final = (
    b'{"event":"stop","sequenceNumber":"%d","stop":{"accountSid":%b,"callSid":%b},"streamSid":%b}'
)


class TwilioSide:
    """Produces the messages Twilio sends on a stream, numbered as Twilio does.

    `connected` carries no sequence number; `start` is 1 and every later
    message counts up. Media `chunk` starts at 1; `timestamp` is ms since the
    stream began, advanced by the audio sent unless given (to model skipped
    silence). All counters are sent as strings, like Twilio.
    """

    __slots__ = (
        "_chunk",
        "_media_tail",
        "_seq",
        "_sid",
        "_ts",
        "account_sid",
        "call_sid",
        "custom_parameters",
        "stream_sid",
    )

    def __init__(
        self,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        custom_parameters: dict[str, str] | None = None,
    ) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self._sid = _json_str(stream_sid)
        self._seq = 0
        self._chunk = 0
        self._ts = 0
        self._media_tail = b'"},"streamSid":' + self._sid + b"}"

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def connected(self) -> bytes:
        return b'{"event":"connected","protocol":"Call","version":"1.0.0"}'

    def start(self) -> bytes:
        msg = _OutStart(
            "start",
            str(self._next_seq()),
            _OutStartBody(
                self.account_sid,
                self.stream_sid,
                self.call_sid,
                ["inbound"],
                _OutMediaFormat("audio/x-mulaw", SAMPLE_RATE, 1),
                self.custom_parameters,
            ),
            self.stream_sid,
        )
        return msgspec.json.encode(msg)

    def media(self, ulaw: bytes, timestamp_ms: int | None = None) -> bytes:
        self._seq += 1
        self._chunk += 1
        ts = self._ts if timestamp_ms is None else timestamp_ms
        self._ts = ts + len(ulaw) // 8
        return TWILIO_MEDIA % (
            self._seq,
            self._chunk,
            ts,
            binascii.b2a_base64(ulaw, newline=False),
            self._media_tail,
        )

    def dtmf(self, digit: str) -> bytes:
        return _TWILIO_DTMF % (self._sid, self._next_seq(), _json_str(digit))

    def mark(self, name: str) -> bytes:
        return _TWILIO_MARK % (self._next_seq(), self._sid, _json_str(name))

    def stop(self) -> bytes:
        return _TWILIO_STOP % (
            self._next_seq(),
            _json_str(self.account_sid),
            _json_str(self.call_sid),
            self._sid,
        )


class ServerMedia(msgspec.Struct, gc=False):
    stream_sid: str
    audio: bytes


class ServerMark(msgspec.Struct, frozen=True):
    stream_sid: str
    name: str


class ServerClear(msgspec.Struct, frozen=True):
    stream_sid: str


class ServerError(msgspec.Struct, frozen=True):
    kind: str  # one of MALFORMED_JSON, INVALID_MESSAGE, UNKNOWN_EVENT, BAD_BASE64, OVERSIZED
    detail: str


ServerMessage = ServerMedia | ServerMark | ServerClear | ServerError


class _SrvPayload(msgspec.Struct, gc=False):
    payload: str


class _SrvName(msgspec.Struct):
    name: str


class _Srv(msgspec.Struct, tag_field="event", rename="camel"):
    stream_sid: str


class _SrvMedia(_Srv, tag="media", gc=False):
    media: _SrvPayload


class _SrvMark(_Srv, tag="mark"):
    mark: _SrvName


class _SrvClear(_Srv, tag="clear"):
    pass


_SERVER_EVENTS: Final = frozenset({"media", "mark", "clear"})
_server_decoder: Final = msgspec.json.Decoder(_SrvMedia | _SrvMark | _SrvClear)


def parse_server(data: bytes | str, max_bytes: int = 1 << 20) -> ServerMessage:
    """Read one message a server sent to "Twilio". Never raises."""
    if len(data) > max_bytes:
        return ServerError(OVERSIZED, str(len(data)))
    try:
        msg = _server_decoder.decode(data)
    except msgspec.ValidationError as exc:
        try:
            event = _probe_decoder.decode(data).event
        except (msgspec.DecodeError, UnicodeDecodeError):
            return ServerError(INVALID_MESSAGE, str(exc))
        if isinstance(event, str) and event in _SERVER_EVENTS:
            return ServerError(INVALID_MESSAGE, str(exc))
        return ServerError(UNKNOWN_EVENT, repr(event)[:64])
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return ServerError(MALFORMED_JSON, str(exc))
    if type(msg) is _SrvMedia:
        try:
            audio = binascii.a2b_base64(msg.media.payload, strict_mode=True)
        except ValueError:
            return ServerError(BAD_BASE64, "")
        return ServerMedia(msg.stream_sid, audio)
    if type(msg) is _SrvMark:
        return ServerMark(msg.stream_sid, msg.mark.name)
    return ServerClear(msg.stream_sid)
