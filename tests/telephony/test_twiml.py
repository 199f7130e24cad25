"""TwiML built for Twilio: exact XML, and URLs Twilio would mangle are refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from telephony.twilio.twiml import connect_stream_twiml, dial_twiml, say_hangup_twiml

HEAD = '<?xml version="1.0" encoding="UTF-8"?>'


def test_connect_stream_exact_xml() -> None:
    xml = connect_stream_twiml(
        "wss://leadline.example.com/twilio/stream",
        {"lead_id": "L-17", "caller": "+15551230000"},
        "https://leadline.example.com/twilio/stream-status",
    )
    assert xml == (
        HEAD + "<Response><Connect>"
        '<Stream statusCallback="https://leadline.example.com/twilio/stream-status" '
        'statusCallbackMethod="POST" url="wss://leadline.example.com/twilio/stream">'
        '<Parameter name="lead_id" value="L-17" />'
        '<Parameter name="caller" value="+15551230000" />'
        "</Stream></Connect></Response>"
    )


def test_connect_stream_without_callback_or_parameters() -> None:
    xml = connect_stream_twiml("wss://h.example/s", {}, None)
    assert (
        xml == HEAD + '<Response><Connect><Stream url="wss://h.example/s" /></Connect></Response>'
    )


def test_parameter_values_are_escaped() -> None:
    hostile = '"/><Hangup/><Parameter name="x'
    xml = connect_stream_twiml("wss://h.example/s", {"name & co": hostile}, None)
    stream = ET.fromstring(xml).find("./Connect/Stream")
    assert stream is not None
    (param,) = stream.findall("Parameter")
    assert param.attrib == {"name": "name & co", "value": hostile}
    assert ET.fromstring(xml).find(".//Hangup") is None


@pytest.mark.parametrize(
    "url",
    [
        "wss://h.example/s?lead=1",
        "wss://h.example/s?",
        "wss://h.example/s#frag",
        "https://h.example/s",
        "h.example/s",
        "wss:///s",
    ],
)
def test_bad_stream_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        connect_stream_twiml(url, {"a": "b"}, None)


def test_say_hangup() -> None:
    assert say_hangup_twiml("Sorry, we can't take your call <now>.") == (
        HEAD + "<Response><Say>Sorry, we can't take your call &lt;now&gt;.</Say>"
        "<Hangup /></Response>"
    )
    assert say_hangup_twiml("Bye", voice="Polly.Joanna") == (
        HEAD + '<Response><Say voice="Polly.Joanna">Bye</Say><Hangup /></Response>'
    )


def test_dial() -> None:
    assert dial_twiml("+15557654321") == (
        HEAD + "<Response><Dial><Number>+15557654321</Number></Dial></Response>"
    )
    assert dial_twiml("+15557654321", caller_id="+15550001111", timeout_s=20) == (
        HEAD + '<Response><Dial callerId="+15550001111" timeout="20">'
        "<Number>+15557654321</Number></Dial></Response>"
    )
    with pytest.raises(ValueError):
        dial_twiml("")
