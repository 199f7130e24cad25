"""CreateSIPParticipant through the real `livekit-api` client against the Twirp fake:
the request LiveKit receives, the signed token, and what each failure means for a dial."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.livekit.settings import LiveKitSettings
from telephony.livekit.sip import (
    LiveKitSip,
    SipDialError,
    classify,
    new_room_name,
    sip_outcome,
)
from tests.fakes.livekit_twirp import Callee, FakeLiveKit


@pytest.fixture
async def fake() -> AsyncIterator[FakeLiveKit]:
    server = FakeLiveKit()
    await server.start()
    yield server
    await server.stop()


def _settings(fake: FakeLiveKit, **kw: object) -> LiveKitSettings:
    base: dict[str, object] = dict(url=fake.url, api_key=fake.api_key,
                                   api_secret=fake.api_secret, sip_trunk_id="ST_fake0trunk",
                                   ringing_timeout_s=5, max_call_duration_s=600)
    base.update(kw)
    return LiveKitSettings(**base)  # type: ignore[arg-type]


async def test_an_answered_dial_sends_the_request_livekit_expects(fake: FakeLiveKit) -> None:
    sip = LiveKitSip(_settings(fake))
    try:
        room = new_room_name("leadline-")
        call = await sip.dial("+14155550100", room, "callee", from_number="+14155550199",
                              attributes={"leadline.job": "7"})
    finally:
        await sip.aclose()
    assert call.room == room and call.participant_identity == "callee"
    assert call.participant_id.startswith("PA_") and call.sip_call_id.startswith("SCL_")
    [got] = fake.received
    req = got.request
    assert got.encoding == "protobuf"  # what the official client sends
    assert (req.sip_trunk_id, req.sip_call_to, req.sip_number, req.room_name) == (
        "ST_fake0trunk", "+14155550100", "+14155550199", room)
    assert req.participant_identity == "callee" and req.wait_until_answered
    assert req.ringing_timeout.seconds == 5 and req.max_call_duration.seconds == 600
    assert dict(req.participant_attributes) == {"leadline.job": "7"}
    # The token was signed with our secret, names our key, grants SIP calls, and expires.
    assert got.claims["iss"] == fake.api_key and got.claims["sip"]["call"] is True
    assert time.time() < got.claims["exp"] <= time.time() + 6 * 3600 + 60


@pytest.mark.parametrize(("code", "outcome"), [(486, "busy"), (600, "busy"),
                                               (480, "no_answer"), (408, "no_answer"),
                                               (487, "no_answer"), (603, "failed"),
                                               (404, "failed"), (500, "failed")])
async def test_a_sip_failure_is_the_call_outcome_and_final(fake: FakeLiveKit, code: int,
                                                           outcome: str) -> None:
    fake.callees["+14155550101"] = Callee(sip_status_code=code)
    sip = LiveKitSip(_settings(fake))
    try:
        with pytest.raises(SipDialError) as info:
            await sip.dial("+14155550101", "r1", "callee")
    finally:
        await sip.aclose()
    err = info.value
    assert (err.sip_status_code, err.outcome, err.permanent) == (code, outcome, True)
    assert sip.dial_errors == {outcome: 1}
    assert sip_outcome(code) == outcome


@pytest.mark.parametrize(("status", "permanent"), [(500, False), (503, False), (429, False),
                                                   (400, True), (401, True)])
async def test_errors_without_a_sip_code_are_sorted_for_retry(fake: FakeLiveKit, status: int,
                                                              permanent: bool) -> None:
    fake.callees["+14155550102"] = Callee(http_status=status)
    sip = LiveKitSip(_settings(fake))
    try:
        with pytest.raises(SipDialError) as info:
            await sip.dial("+14155550102", "r2", "callee")
    finally:
        await sip.aclose()
    assert info.value.outcome is None and info.value.http_status == status
    assert info.value.permanent is permanent


async def test_a_wrong_secret_or_trunk_is_refused_for_good(fake: FakeLiveKit) -> None:
    sip = LiveKitSip(_settings(fake, api_secret="not-the-secret-but-long-enough-for-hs256"))
    try:
        with pytest.raises(SipDialError) as info:
            await sip.dial("+14155550103", "r3", "callee")
    finally:
        await sip.aclose()
    assert info.value.code == "unauthenticated" and info.value.permanent
    assert fake.rejected_auth == 1 and not fake.received
    sip = LiveKitSip(_settings(fake, sip_trunk_id="ST_unknown"))
    try:
        with pytest.raises(SipDialError) as info:
            await sip.dial("+14155550103", "r3", "callee")
    finally:
        await sip.aclose()
    assert info.value.code == "not_found" and info.value.permanent


async def test_a_dial_that_never_returns_is_bounded_by_the_ringing_window(
        fake: FakeLiveKit) -> None:
    fake.callees["+14155550104"] = Callee(hang=True)
    sip = LiveKitSip(_settings(fake, ringing_timeout_s=5))
    started = time.monotonic()
    try:
        with pytest.raises(SipDialError) as info:
            await sip.dial("+14155550104", "r4", "callee")
    finally:
        await sip.aclose()
    took = time.monotonic() - started
    assert not info.value.permanent and info.value.outcome is None
    assert 5 <= took < 12, took  # ringing + the client's margin, well before ours runs out


async def test_the_agent_token_joins_one_room_and_delete_room_is_signed(
        fake: FakeLiveKit) -> None:
    sip = LiveKitSip(_settings(fake))
    try:
        token = sip.agent_token("leadline-abc", "leadline-agent")
        claims = jwt.decode(token, fake.api_secret, algorithms=["HS256"], issuer=fake.api_key)
        assert claims["sub"] == "leadline-agent"
        assert claims["video"]["room"] == "leadline-abc" and claims["video"]["roomJoin"]
        assert await sip.end_room("leadline-abc")
        assert fake.deleted_rooms == ["leadline-abc"]
        assert fake.received[-1].claims["video"]["roomCreate"] is True
        await fake.stop()  # the server gone: reported, not raised
        assert not await sip.end_room("leadline-abc")
    finally:
        await sip.aclose()


def test_settings_refuse_nonsense() -> None:
    for bad in ({"ringing_timeout_s": 1}, {"max_call_duration_s": 5}, {"url": "ftp://x"},
                {"source_queue_ms": 10}):
        with pytest.raises(ValueError):
            LiveKitSettings(**bad)  # type: ignore[arg-type]
    assert not LiveKitSettings().configured


@settings(max_examples=300, deadline=None)
@given(st.integers(100, 599), st.text(max_size=20),
       st.dictionaries(st.sampled_from(["sip_status_code", "sip_status", "error_details", "x"]),
                       st.one_of(st.text(max_size=8), st.sampled_from(
                           ["486", "٣", "+5", " 480", "4800", "0"])), max_size=4))
def test_any_server_error_becomes_a_dial_error(status: int, code: str,
                                               meta: dict[str, str]) -> None:
    from livekit.api.twirp_client import ServerError, SipCallError

    for exc in (ServerError(code, "m", status=status, metadata=meta),
                SipCallError(code, "m", status=status, metadata=meta)):
        err = classify(exc)
        raw = meta.get("sip_status_code", "")
        if raw.isascii() and raw.isdigit() and len(raw) <= 3:
            assert err.sip_status_code == int(raw) and err.outcome in (
                "busy", "no_answer", "failed") and err.permanent
        else:
            assert err.outcome is None and err.permanent is (status < 500
                                                             and status not in (408, 429))
