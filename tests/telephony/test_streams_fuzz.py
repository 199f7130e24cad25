"""Hypothesis against the Media Streams core: nothing raises, every message is accounted for."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.dev.twilio_side import TwilioSide, parse_server
from telephony.twilio.streams import (
    Connected,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    StreamProtocol,
    StreamState,
)

STREAM = "MZ" + "a" * 32
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Tally:
    """Feeds a protocol and checks its counters against what it returned."""

    def __init__(self, p: StreamProtocol) -> None:
        self.p = p
        self.errors = 0
        self.events = 0
        self.nones = 0

    def feed(self, data: bytes | str) -> object:
        ev = self.p.receive(data)
        if isinstance(ev, ProtocolError):
            self.errors += 1
            assert ev.kind in self.p.errors
        elif ev is None:
            self.nones += 1
        else:
            self.events += 1
        return ev

    def check(self) -> None:
        p = self.p
        assert p.messages == self.errors + self.events + self.nones
        assert p.error_total == self.errors == sum(p.errors.values())
        assert p.ignored == self.nones
        assert all(v >= 0 for v in p.errors.values())


def fresh(started: bool) -> Tally:
    t = Tally(
        StreamProtocol(max_message_bytes=4096, error_budget=10**9, max_consecutive_errors=10**9)
    )
    if started:
        s = TwilioSide(STREAM, "CA1", "AC1")
        t.feed(s.connected())
        t.feed(s.start())
    return t


@FUZZ
@given(st.lists(st.binary(max_size=600), max_size=20), st.booleans())
def test_arbitrary_bytes(chunks: list[bytes], started: bool) -> None:
    t = fresh(started)
    for data in chunks:
        t.feed(data)
    t.check()


@FUZZ
@given(st.lists(st.text(max_size=300), max_size=20), st.booleans())
def test_arbitrary_text(chunks: list[str], started: bool) -> None:
    t = fresh(started)
    for data in chunks:
        t.feed(data)
    t.check()


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
events = st.sampled_from(
    ["connected", "start", "media", "dtmf", "mark", "stop", "clear", "", "MEDIA"]
)
payloads = st.one_of(
    st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
    st.text(alphabet="ABCDEFGHabcdefgh0123456789+/=", max_size=40),
    st.text(max_size=10),
)


@st.composite
def twilioish(draw: st.DrawFn) -> dict[str, Any]:
    """Messages close enough to Twilio's to get past the first checks."""
    event = draw(events)
    msg: dict[str, Any] = {"event": event}
    if draw(st.booleans()):
        msg["streamSid"] = draw(st.sampled_from([STREAM, "MZother", ""]))
    if draw(st.booleans()):
        msg["sequenceNumber"] = draw(
            st.one_of(st.integers(-5, 10**6).map(str), st.integers(), json_value)
        )
    body: dict[str, Any] = {}
    if event == "media":
        body = {
            "payload": draw(payloads),
            "track": draw(st.sampled_from(["inbound", "outbound", "x"])),
            "chunk": draw(st.one_of(st.integers(0, 99).map(str), json_value)),
            "timestamp": draw(st.one_of(st.integers(-100, 10**9).map(str), st.integers())),
        }
    elif event == "start":
        body = {
            "streamSid": draw(st.sampled_from([STREAM, "", "MZb"])),
            "customParameters": draw(
                st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_value)
            ),
            "mediaFormat": draw(
                st.fixed_dictionaries(
                    {
                        "encoding": st.sampled_from(["audio/x-mulaw", "audio/x-l16"]),
                        "sampleRate": st.sampled_from([8000, 16000, "8000"]),
                        "channels": st.sampled_from([1, 2]),
                    }
                )
            ),
        }
    elif event == "dtmf":
        body = {"digit": draw(st.text(max_size=3)), "track": "inbound_track"}
    elif event == "mark":
        body = {"name": draw(st.text(max_size=10) | json_value)}
    # drop or corrupt a field now and then
    for key in list(body):
        if draw(st.integers(0, 9)) == 0:
            del body[key]
        elif draw(st.integers(0, 9)) == 0:
            body[key] = draw(json_value)
    if event and draw(st.integers(0, 5)) != 0:
        msg[event] = body
    return msg


@FUZZ
@given(st.lists(twilioish(), max_size=25))
def test_twilio_like_dicts(messages: list[dict[str, Any]]) -> None:
    t = fresh(False)
    for msg in messages:
        ev = t.feed(json.dumps(msg))
        p = t.p
        if isinstance(ev, Media):
            assert p.state is StreamState.STARTED
            assert 0 < len(ev.audio) <= 8000 and ev.gap_ms >= 0
        elif isinstance(ev, Dtmf | Mark):
            assert p.state is StreamState.STARTED
        elif isinstance(ev, Start):
            assert p.stream_sid == ev.stream_sid and p.stream_sid
        elif isinstance(ev, Stop):
            assert p.state is StreamState.STOPPED
    t.check()


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "junk"]),
            st.booleans(),  # from our stream or a stranger's
            st.binary(min_size=1, max_size=320),
        ),
        max_size=40,
    )
)
def test_valid_messages_in_any_order(script: list[tuple[str, bool, bytes]]) -> None:
    """Real Twilio messages in a random order: the state machine holds its line."""
    ours = TwilioSide(STREAM, "CA1", "AC1", {"k": "v"})
    theirs = TwilioSide("MZ" + "b" * 32, "CA2", "AC2")
    t = fresh(False)
    stopped = False
    owner = ""  # whichever stream's start came first owns the protocol
    for kind, mine, audio in script:
        s = ours if mine else theirs
        data = {
            "connected": s.connected,
            "start": s.start,
            "media": lambda s=s, audio=audio: s.media(audio),
            "dtmf": lambda s=s: s.dtmf("5"),
            "mark": lambda s=s: s.mark("m"),
            "stop": s.stop,
            "junk": lambda: b"{]",
        }[kind]()
        before = t.p.state
        ev = t.feed(data)
        if stopped:
            assert isinstance(ev, ProtocolError)
            assert ev.kind in ("after_stop", "malformed_json")
            continue
        if isinstance(ev, Start):
            assert not owner
            owner = ev.stream_sid
        if isinstance(ev, Stop):
            stopped = True
        if isinstance(ev, Media | Dtmf | Mark):
            assert before is StreamState.STARTED and s.stream_sid == owner
        if isinstance(ev, Media):
            assert ev.audio == audio
        if isinstance(ev, Connected):
            assert before is StreamState.IDLE
    t.check()


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), twilioish().map(json.dumps)))
def test_parse_server_never_raises(data: bytes | str) -> None:
    parse_server(data)


def test_invalid_utf8_inside_a_json_string_is_a_counted_fault_not_a_crash():

    bad = b'{"event":"connected","protocol":"\x80","version":"1"}'
    proto = StreamProtocol()
    event = proto.receive(bad)
    assert event is not None and event.kind == "malformed_json"
    assert proto.errors["malformed_json"] == 1
    assert parse_server(b'{"event":"clear","streamSid":"\xff"}').kind == "malformed_json"
