"""Twilio Media Streams core: every event, every fault, the encoders' exact shape."""

from __future__ import annotations

import base64
import json

import pytest

from media.codecs import ulaw
from ops.dev.twilio_side import (
    ServerClear,
    ServerError,
    ServerMark,
    ServerMedia,
    TwilioSide,
    parse_server,
)
from telephony.twilio.streams import (
    ERROR_KINDS,
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaFormat,
    Outbound,
    ProtocolError,
    Start,
    Stop,
    StreamProtocol,
    StreamState,
)
from tests.audio import frames, speech_ulaw

STREAM = "MZ" + "1" * 32
CALL = "CA" + "2" * 32
ACCOUNT = "AC" + "3" * 32


@pytest.fixture(scope="module")
def speech_frames() -> list[bytes]:
    return frames(speech_ulaw("Thanks for calling, how can I help you today?"), ulaw.FRAME_BYTES)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def side() -> TwilioSide:
    return TwilioSide(STREAM, CALL, ACCOUNT, {"lead_id": "L-1", "caller": "+15551230000"})


def started() -> tuple[StreamProtocol, TwilioSide]:
    p, s = StreamProtocol(), side()
    assert isinstance(p.receive(s.connected()), Connected)
    assert isinstance(p.receive(s.start()), Start)
    return p, s


def media_msg(payload: str, *, sid: str = STREAM, track: str = "inbound", ts: str = "20") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {"track": track, "chunk": "2", "timestamp": ts, "payload": payload},
            "streamSid": sid,
        }
    )


def assert_no_errors(p: StreamProtocol) -> None:
    assert p.error_total == 0
    assert p.errors == dict.fromkeys(ERROR_KINDS, 0)


# --- Twilio's documented messages, verbatim shape ------------------------------


def docs(text: str) -> str:
    """Twilio's doc examples use XXX placeholders for the SIDs."""
    return text.replace("ACXXX", ACCOUNT).replace("MZXXX", STREAM).replace("CAXXX", CALL)


def test_documented_messages_decode(speech_frames: list[bytes]) -> None:
    """The examples from Twilio's "Media Streams - WebSocket Messages", whitespace and all."""
    p = StreamProtocol()
    ev = p.receive('{ \n "event": "connected",\n "protocol": "Call", \n "version": "1.0.0"\n}')
    assert ev == Connected("Call", "1.0.0")
    assert p.state is StreamState.CONNECTED
    start = """{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "ACXXX",
    "streamSid": "MZXXX",
    "callSid": "CAXXX",
    "tracks": [ "inbound" ],
    "mediaFormat": {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1 },
    "customParameters": {
     "FirstName": "Jane",
     "LastName": "Doe",
     "RemoteParty": "Bob"
   }
  },
  "streamSid": "MZXXX"
}"""
    ev = p.receive(docs(start).encode())
    assert ev == Start(
        stream_sid=STREAM,
        account_sid=ACCOUNT,
        call_sid=CALL,
        tracks=["inbound"],
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        media_format=MediaFormat("audio/x-mulaw", 8000, 1),
        sequence_number=1,
    )
    assert p.state is StreamState.STARTED
    assert (p.stream_sid, p.call_sid, p.account_sid) == (STREAM, CALL, ACCOUNT)
    assert p.custom_parameters["RemoteParty"] == "Bob"

    frame = speech_frames[10]
    media = """{
 "event": "media",
 "sequenceNumber": "4",
 "media": {
   "track": "inbound",
   "chunk": "2",
   "timestamp": "5",
   "payload": "PAYLOAD"
 },
"streamSid": "MZXXX"
}"""
    ev = p.receive(docs(media).replace("PAYLOAD", b64(frame)))
    assert isinstance(ev, Media)
    assert (ev.audio, ev.timestamp_ms, ev.chunk, ev.sequence_number) == (frame, 5, 2, 4)

    dtmf = (
        '{ "event": "dtmf", "streamSid":"MZXXX", "sequenceNumber":"5", '
        '"dtmf": { "track":"inbound_track", "digit": "1" } }'
    )
    assert p.receive(docs(dtmf)) == Dtmf("1", 5)
    mark = (
        '{"event": "mark", "sequenceNumber": "6", "streamSid": "MZXXX", '
        '"mark": {"name": "my label"}}'
    )
    assert p.receive(docs(mark)) == Mark("my label", 6)
    stop = (
        '{"event": "stop", "sequenceNumber": "7", '
        '"stop": {"accountSid": "ACXXX", "callSid": "CAXXX"}, "streamSid": "MZXXX"}'
    )
    assert p.receive(docs(stop)) == Stop(ACCOUNT, CALL, 7)
    assert p.state is StreamState.STOPPED
    assert_no_errors(p)
    assert p.messages == 6


def test_numbers_may_also_come_as_json_numbers() -> None:
    p, _ = started()
    ev = p.receive(
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": 9,
                "media": {
                    "track": "inbound",
                    "chunk": 7,
                    "timestamp": 140,
                    "payload": b64(b"\x7f" * 160),
                },
                "streamSid": STREAM,
            }
        )
    )
    assert isinstance(ev, Media) and (ev.sequence_number, ev.chunk, ev.timestamp_ms) == (9, 7, 140)


def test_twilio_side_round_trip(speech_frames: list[bytes]) -> None:
    p, s = started()
    got = []
    for frame in speech_frames[:50]:
        ev = p.receive(s.media(frame))
        assert isinstance(ev, Media)
        got.append(ev)
    assert b"".join(e.audio for e in got) == b"".join(speech_frames[:50])
    assert [e.chunk for e in got] == list(range(1, 51))
    assert [e.timestamp_ms for e in got] == [20 * i for i in range(50)]
    assert [e.sequence_number for e in got] == list(range(2, 52))  # start was 1
    assert all(e.gap_ms == 0 for e in got)
    assert p.receive(s.dtmf("#")) == Dtmf("#", 52)
    assert p.receive(s.mark("m-1")) == Mark("m-1", 53)
    assert p.receive(s.stop()) == Stop(ACCOUNT, CALL, 54)
    assert_no_errors(p)


def test_skipped_silence_shows_as_gap(speech_frames: list[bytes]) -> None:
    p, s = started()
    first = p.receive(s.media(speech_frames[0]))  # ts 0..20
    later = p.receive(s.media(speech_frames[1], timestamp_ms=120))  # 100 ms skipped
    after = p.receive(s.media(speech_frames[2]))
    assert isinstance(first, Media) and isinstance(later, Media) and isinstance(after, Media)
    assert (first.gap_ms, later.gap_ms, after.gap_ms) == (0, 100, 0)
    assert after.timestamp_ms == 140


def test_any_payload_length_up_to_a_second_is_audio(speech_frames: list[bytes]) -> None:
    p, _ = started()
    for size in (1, 80, 159, 161, 320, 8000):
        chunk = b"".join(speech_frames)[:size]
        ev = p.receive(media_msg(b64(chunk)))
        assert isinstance(ev, Media) and ev.audio == chunk
    assert_no_errors(p)


def test_outbound_track_media_is_ignored() -> None:
    p, _ = started()
    assert p.receive(media_msg(b64(b"\x01" * 160), track="outbound")) is None
    assert p.ignored == 1
    assert_no_errors(p)


def test_twilio_side_messages_have_twilios_shape() -> None:
    s = side()
    assert json.loads(s.connected()) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    start = json.loads(s.start())
    assert start == {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": STREAM,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"lead_id": "L-1", "caller": "+15551230000"},
        },
        "streamSid": STREAM,
    }
    media = json.loads(s.media(b"\xff" * 160))
    assert media == {
        "event": "media",
        "sequenceNumber": "2",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "0",
            "payload": b64(b"\xff" * 160),
        },
        "streamSid": STREAM,
    }
    assert json.loads(s.dtmf("7")) == {
        "event": "dtmf",
        "streamSid": STREAM,
        "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "7"},
    }
    assert json.loads(s.mark('odd "name"\n')) == {
        "event": "mark",
        "sequenceNumber": "4",
        "streamSid": STREAM,
        "mark": {"name": 'odd "name"\n'},
    }
    assert json.loads(s.stop()) == {
        "event": "stop",
        "sequenceNumber": "5",
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
        "streamSid": STREAM,
    }


# --- outbound encoders ----------------------------------------------------------


def test_outbound_exact_shape(speech_frames: list[bytes]) -> None:
    out = Outbound(STREAM)
    frame = speech_frames[5]
    media = out.media(frame)
    assert json.loads(media) == {
        "event": "media",
        "streamSid": STREAM,
        "media": {"payload": b64(frame)},
    }
    assert list(json.loads(media)) == ["event", "streamSid", "media"]
    assert json.loads(out.mark("utt-3:1200")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "utt-3:1200"},
    }
    assert json.loads(out.clear()) == {"event": "clear", "streamSid": STREAM}
    # and msgspec (the sim's parser) reads them back
    assert parse_server(media) == ServerMedia(STREAM, frame)
    assert parse_server(out.mark("utt-3:1200")) == ServerMark(STREAM, "utt-3:1200")
    assert parse_server(out.clear()) == ServerClear(STREAM)


def test_outbound_escapes_what_it_must() -> None:
    sid = 'MZ"\\\u2028x'
    out = Outbound(sid)
    assert json.loads(out.clear())["streamSid"] == sid
    assert json.loads(out.mark('a"}{b'))["mark"]["name"] == 'a"}{b'
    assert json.loads(out.media(b""))["media"]["payload"] == ""


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'{"event":"media","streamSid":"MZ","media":{"payload":"AA', "malformed_json"),
        (b'{"event":"play","streamSid":"MZ"}', "unknown_event"),
        (b'{"streamSid":"MZ"}', "unknown_event"),
        (b'{"event":"media","streamSid":"MZ","media":{}}', "invalid_message"),
        (b'{"event":"mark","streamSid":"MZ"}', "invalid_message"),
        (b"[1,2]", "invalid_message"),
        (b'{"event":"media","streamSid":"MZ","media":{"payload":"@@@="}}', "bad_base64"),
    ],
)
def test_parse_server_never_raises(data: bytes, kind: str) -> None:
    ev = parse_server(data)
    assert isinstance(ev, ServerError) and ev.kind == kind


def test_parse_server_oversized() -> None:
    ev = parse_server(b" " * 100, max_bytes=10)
    assert isinstance(ev, ServerError) and ev.kind == "oversized"


# --- faults: each kind counted ----------------------------------------------------


def counted(p: StreamProtocol, data: bytes | str, kind: str) -> ProtocolError:
    before = dict(p.errors)
    ev = p.receive(data)
    assert isinstance(ev, ProtocolError), ev
    assert ev.kind == kind
    before[kind] += 1
    assert p.errors == before
    return ev


def test_oversized_is_refused_before_parsing() -> None:
    p = StreamProtocol(max_message_bytes=1024)
    counted(p, b'{"event":"connected"}' + b" " * 1024, "oversized")
    assert p.state is StreamState.IDLE


def test_malformed_json() -> None:
    p = StreamProtocol()
    counted(p, b'{"event": "connected"', "malformed_json")
    counted(p, b"\xff\xfe\x00garbage", "malformed_json")
    counted(p, "", "malformed_json")


def test_unknown_event_and_invalid_message() -> None:
    p, _ = started()
    counted(p, '{"event":"hello"}', "unknown_event")
    counted(p, '{"event":42}', "unknown_event")
    counted(p, '{"sequenceNumber":"1"}', "unknown_event")
    counted(p, json.dumps({"event": "media", "streamSid": STREAM}), "invalid_message")
    counted(p, json.dumps({"event": "media", "media": {"payload": 5}}), "invalid_message")
    counted(p, json.dumps({"event": "start", "start": "x"}), "invalid_message")
    counted(p, '"media"', "invalid_message")


def test_bad_base64(speech_frames: list[bytes]) -> None:
    p, _ = started()
    good = b64(speech_frames[3])
    counted(p, media_msg(good[:-1]), "bad_base64")  # broken padding
    counted(p, media_msg("!!" + good[2:]), "bad_base64")  # not the alphabet
    counted(p, media_msg(good + "AAAA"), "bad_base64")  # data after the padding
    counted(p, media_msg("é" * 8), "bad_base64")  # not even ASCII


def test_odd_payload() -> None:
    p, _ = started()
    counted(p, media_msg(""), "odd_payload")
    counted(p, media_msg(b64(b"\x10" * 8001)), "odd_payload")


def test_media_dtmf_mark_before_start() -> None:
    p, s = StreamProtocol(), side()
    p.receive(s.connected())
    counted(p, media_msg(b64(b"\x10" * 160)), "media_before_start")
    counted(p, s.dtmf("1"), "media_before_start")
    counted(p, s.mark("m"), "media_before_start")
    assert p.state is StreamState.CONNECTED


def test_duplicate_start_keeps_the_first() -> None:
    p, _ = started()
    other = TwilioSide("MZ" + "9" * 32, CALL, ACCOUNT)
    counted(p, other.start(), "duplicate_start")
    assert p.stream_sid == STREAM


def test_connected_out_of_order() -> None:
    p, s = started()
    counted(p, s.connected(), "out_of_order")


def test_everything_after_stop_is_counted(speech_frames: list[bytes]) -> None:
    p, s = started()
    assert isinstance(p.receive(s.stop()), Stop)
    counted(p, s.media(speech_frames[0]), "after_stop")
    counted(p, s.mark("late"), "after_stop")
    counted(p, s.stop(), "after_stop")
    counted(p, s.start(), "after_stop")
    assert p.state is StreamState.STOPPED


def test_stop_before_start_ends_the_stream() -> None:
    p, s = StreamProtocol(), side()
    assert isinstance(p.receive(s.stop()), Stop)
    assert p.state is StreamState.STOPPED


def test_wrong_stream_sid(speech_frames: list[bytes]) -> None:
    p, _ = started()
    other = TwilioSide("MZ" + "8" * 32, CALL, ACCOUNT)
    counted(p, other.media(speech_frames[0]), "wrong_stream_sid")
    counted(p, other.dtmf("4"), "wrong_stream_sid")
    counted(p, other.mark("x"), "wrong_stream_sid")
    counted(p, other.stop(), "wrong_stream_sid")
    counted(p, media_msg(b64(speech_frames[0]), sid=""), "wrong_stream_sid")
    assert p.state is StreamState.STARTED


def test_bad_dtmf_digit() -> None:
    p, _ = started()
    for digit in ("", "12", "x"):
        msg = {
            "event": "dtmf",
            "streamSid": STREAM,
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
        counted(p, json.dumps(msg), "invalid_message")


@pytest.mark.parametrize(
    "fmt",
    [
        {"encoding": "audio/x-l16", "sampleRate": 8000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
    ],
)
def test_unsupported_format_is_fatal_at_once(fmt: dict[str, object]) -> None:
    p = StreamProtocol()
    msg = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": STREAM,
        "start": {"streamSid": STREAM, "callSid": CALL, "mediaFormat": fmt},
    }
    ev = counted(p, json.dumps(msg), "unsupported_format")
    assert ev.fatal and p.fatal
    assert p.state is StreamState.IDLE


def test_start_needs_one_stream_sid() -> None:
    p = StreamProtocol()
    counted(p, json.dumps({"event": "start", "start": {"callSid": CALL}}), "invalid_message")
    msg = {"event": "start", "streamSid": "MZa", "start": {"streamSid": "MZb"}}
    counted(p, json.dumps(msg), "invalid_message")


def test_every_kind_is_reachable() -> None:
    """The kinds the tests above count are exactly the kinds exported."""
    assert set(ERROR_KINDS) == {
        "oversized",
        "malformed_json",
        "invalid_message",
        "unknown_event",
        "bad_base64",
        "odd_payload",
        "media_before_start",
        "duplicate_start",
        "out_of_order",
        "after_stop",
        "wrong_stream_sid",
        "unsupported_format",
    }


# --- fatal -----------------------------------------------------------------------------


def test_fatal_after_consecutive_errors(speech_frames: list[bytes]) -> None:
    p, s = StreamProtocol(max_consecutive_errors=3, error_budget=100), side()
    p.receive(s.connected())
    p.receive(s.start())
    for _ in range(2):
        assert not p.receive(b"nope").fatal  # type: ignore[union-attr]
    assert isinstance(p.receive(s.media(speech_frames[0])), Media)  # resets the run
    for _ in range(2):
        p.receive(b"nope")
    assert not p.fatal
    ev = p.receive(b"nope")
    assert isinstance(ev, ProtocolError) and ev.fatal and p.fatal
    # still counted, never raises, once fatal
    assert isinstance(p.receive(b"nope"), ProtocolError)
    assert p.errors["malformed_json"] == 6


def test_fatal_after_error_budget(speech_frames: list[bytes]) -> None:
    p, s = StreamProtocol(max_consecutive_errors=100, error_budget=5), side()
    p.receive(s.start())
    for i in range(4):
        p.receive(b"{")
        p.receive(s.media(speech_frames[i]))
    assert not p.fatal
    p.receive(b"{")
    assert p.fatal and p.error_total == 5


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        StreamProtocol(max_message_bytes=10)
    with pytest.raises(ValueError):
        StreamProtocol(error_budget=0)


def test_str_and_bytes_are_the_same(speech_frames: list[bytes]) -> None:
    a, s1 = started()
    b, s2 = started()
    for frame in speech_frames[:5]:
        assert a.receive(s1.media(frame)) == b.receive(s2.media(frame).decode())
