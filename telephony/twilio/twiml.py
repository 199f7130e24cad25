"""TwiML the voice webhook answers with, built with Twilio's own SDK classes.

Using the SDK (not string templates) keeps escaping and attribute names right:
a caller-controlled value in a `<Parameter>` or `<Say>` can never break the XML.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from twilio.twiml.voice_response import Connect, VoiceResponse


def connect_stream_twiml(
    stream_url: str,
    parameters: dict[str, str],
    status_callback: str | None = None,
) -> str:
    """`<Connect><Stream>`: a bidirectional Media Stream to `stream_url`.

    Twilio drops the query string of a `<Stream url>`, so anything the stream
    needs to know travels as `<Parameter>`s and arrives in `start.customParameters`;
    a URL with a query string is refused here rather than silently losing data.
    """
    parts = urlsplit(stream_url)
    if parts.scheme not in ("wss", "ws") or not parts.netloc:
        raise ValueError(f"stream_url must be a ws(s):// URL, got {stream_url!r}")
    if parts.query or stream_url.endswith("?"):
        raise ValueError("stream_url must not have a query string; use parameters instead")
    if parts.fragment:
        raise ValueError("stream_url must not have a fragment")
    response = VoiceResponse()
    connect = Connect()
    if status_callback:
        stream = connect.stream(
            url=stream_url, status_callback=status_callback, status_callback_method="POST"
        )
    else:
        stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def say_hangup_twiml(text: str, voice: str | None = None) -> str:
    """Say something and hang up: how a call we cannot take is turned away politely."""
    response = VoiceResponse()
    if voice:
        response.say(text, voice=voice)
    else:
        response.say(text)
    response.hangup()
    return str(response)


def dial_twiml(number: str, caller_id: str | None = None, timeout_s: int | None = None) -> str:
    """`<Dial><Number>`: transfer the caller to a human at `number` (E.164)."""
    if not number:
        raise ValueError("number is required")
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, timeout=timeout_s)
    dial.number(number)
    return str(response)
