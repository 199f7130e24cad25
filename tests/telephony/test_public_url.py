"""`twilio.public_url`: an explicit scheme is used as given, a bare host means TLS.

Twilio signs the URL it requested, so the URL we check a signature against and
the callback URLs we hand out must both follow the scheme the operator wrote.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from telephony.settings import TwilioSettings
from telephony.twilio.http import TwilioRoutes, _scheme, public_base_url
from telephony.twilio.signature import SignatureChecker

TOKEN = "public-url-token-0123"


class _NoCalls:
    """The voice webhook only asks whether the server is full."""

    full = False


@pytest.mark.parametrize(
    ("public_url", "http", "ws", "base"),
    [
        ("http://127.0.0.1:8080", "http", "ws", "http://127.0.0.1:8080"),
        ("HTTP://127.0.0.1:8080/", "http", "ws", "http://127.0.0.1:8080"),
        ("https://agent.example.com/prefix/", "https", "wss", "https://agent.example.com/prefix"),
        ("agent.example.com", "https", "wss", "https://agent.example.com"),
        ("agent.example.com/pre/", "https", "wss", "https://agent.example.com/pre"),
    ],
)
def test_scheme_follows_public_url(public_url: str, http: str, ws: str, base: str) -> None:
    settings = TwilioSettings(public_url=public_url)
    request = make_mocked_request("POST", "/twilio/voice", headers={"Host": "internal:9"})
    assert _scheme(request, settings, "https", "http") == http
    assert _scheme(request, settings, "wss", "ws") == ws
    assert public_base_url(settings) == base
    assert public_base_url(settings, request) == base


def test_without_public_url_the_request_decides() -> None:
    settings = TwilioSettings()
    plain = make_mocked_request("POST", "/x", headers={"Host": "internal:9"})
    proxied = make_mocked_request(
        "POST", "/x", headers={"Host": "internal:9", "X-Forwarded-Proto": "https",
                               "X-Forwarded-Host": "edge.example.com"})
    assert public_base_url(settings, plain) == "http://internal:9"
    assert public_base_url(settings, proxied) == "https://edge.example.com"
    assert public_base_url(settings) is None


async def _voice(public_url: str, signed_url: str) -> tuple[int, str]:
    settings = TwilioSettings(auth_token=TOKEN, public_url=public_url)
    routes = TwilioRoutes(lambda: settings, _NoCalls())  # type: ignore[arg-type]
    app = web.Application()
    routes.add_to(app)
    form: dict[str, Any] = {"CallSid": "CA" + "1" * 32, "From": "+14155550100",
                            "To": "+14155550199"}
    signature = SignatureChecker(TOKEN).sign(signed_url, form)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/twilio/voice", data=form,
                                 headers={"X-Twilio-Signature": signature})
        return resp.status, await resp.text()


async def test_explicit_http_is_signed_and_called_back_over_http() -> None:
    status, body = await _voice("http://127.0.0.1:8080", "http://127.0.0.1:8080/twilio/voice")
    assert status == 200
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "ws://127.0.0.1:8080/twilio/media"
    assert stream.get("statusCallback") == "http://127.0.0.1:8080/twilio/stream-status"


async def test_explicit_http_refuses_a_signature_over_https() -> None:
    status, _ = await _voice("http://127.0.0.1:8080", "https://127.0.0.1:8080/twilio/voice")
    assert status == 403


async def test_bare_host_keeps_tls() -> None:
    status, body = await _voice("agent.example.com", "https://agent.example.com/twilio/voice")
    assert status == 200
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://agent.example.com/twilio/media"
