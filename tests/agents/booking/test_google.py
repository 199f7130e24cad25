"""The Google Calendar provider against the fake speaking Google's REST shapes: freeBusy,
events.insert with the attendee and sendUpdates=all, OAuth refresh (user and service
account with delegation), 401 refresh-once, 403, 429/5xx retried with bounded backoff,
timeouts, and a retried insert that Google had already done."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.booking.google import GoogleCalendar, event_id_for
from agents.booking.providers import CalendarError
from agents.booking.settings import GoogleCalendarSettings
from tests.fakes.google_calendar import FakeGoogleCalendar

AT = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)
HALF = timedelta(minutes=30)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleCalendar]:
    server = await FakeGoogleCalendar(calendar_id="sales@example.com").start()
    yield server
    await server.stop()


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def user_settings(fake: FakeGoogleCalendar, **kw: object) -> GoogleCalendarSettings:
    args: dict[str, object] = {
        "calendar_id": fake.calendar_id, "client_id": fake.client_id,
        "client_secret": fake.client_secret, "refresh_token": fake.refresh_token,
        "base_url": fake.base_url, "token_url": fake.token_url, "timeout_s": 5.0}
    args.update(kw)
    return GoogleCalendarSettings(**args)  # type: ignore[arg-type]


async def calendar(fake: FakeGoogleCalendar, **kw: object) -> tuple[GoogleCalendar, Sleeps]:
    sleeps = Sleeps()
    return GoogleCalendar(user_settings(fake, **kw), sleep=sleeps), sleeps


async def test_free_busy_and_insert_speak_google_s_shapes(fake: FakeGoogleCalendar) -> None:
    fake.busy = [(AT + timedelta(hours=1), AT + timedelta(hours=2))]
    cal, _ = await calendar(fake)
    try:
        busy = await cal.free_busy(AT, AT + timedelta(hours=8))
        assert [(b.start, b.end) for b in busy] == [(AT + timedelta(hours=1),
                                                     AT + timedelta(hours=2))]
        req = fake.requests[0]
        assert req.path == "/calendar/v3/freeBusy"
        assert req.body == {"timeMin": "2026-12-08T15:00:00Z", "timeMax": "2026-12-08T23:00:00Z",
                            "timeZone": "UTC", "items": [{"id": "sales@example.com"}]}
        assert req.authorization.startswith("Bearer ya29.fake-")
        event = await cal.create_event(AT, AT + HALF, "Intro call", "notes", "ann@example.com",
                                       key="CA1:2026-12-08T15:00:00+00:00")
        assert event.event_id == event_id_for("CA1:2026-12-08T15:00:00+00:00")
        assert event.link.startswith("https://www.google.com/calendar/event?eid=")
        stored = fake.events[event.event_id]
        assert stored["_sendUpdates"] == "all"
        assert stored["attendees"] == [{"email": "ann@example.com",
                                        "responseStatus": "needsAction"}]
        assert stored["start"] == {"dateTime": "2026-12-08T15:00:00Z", "timeZone": "UTC"}
        insert = fake.requests[-1]
        assert insert.path == "/calendar/v3/calendars/sales%40example.com/events" or \
            insert.path == "/calendar/v3/calendars/sales@example.com/events"
        assert insert.query == {"sendUpdates": "all"}
        # The new event is busy time now.
        assert len(await cal.free_busy(AT, AT + timedelta(hours=8))) == 2
        assert fake.token_requests[0]["grant_type"] == "refresh_token"
        assert cal.refreshes == 1
    finally:
        await cal.close()


async def test_401_refreshes_once_and_retries(fake: FakeGoogleCalendar) -> None:
    cal, _ = await calendar(fake)
    try:
        await cal.free_busy(AT, AT + HALF)
        fake.expire_tokens()
        await cal.free_busy(AT, AT + HALF)
        assert cal.refreshes == 2 and len(fake.token_requests) == 2
        statuses = [r.authorization for r in fake.requests]
        assert statuses[1] == statuses[0] and statuses[2] != statuses[1]
    finally:
        await cal.close()


async def test_revoked_refresh_token_is_a_clear_error(fake: FakeGoogleCalendar) -> None:
    cal, _ = await calendar(fake, refresh_token="1//revoked")
    try:
        with pytest.raises(CalendarError, match="refused the credentials") as info:
            await cal.free_busy(AT, AT + HALF)
        assert info.value.status == 401 and not info.value.retryable
        assert fake.requests == []
    finally:
        await cal.close()


async def test_403_is_not_retried_and_says_why(fake: FakeGoogleCalendar) -> None:
    cal, sleeps = await calendar(fake)
    fake.faults = [(403, "requiredAccessLevel")]
    try:
        with pytest.raises(CalendarError, match="403 requiredAccessLevel") as info:
            await cal.create_event(AT, AT + HALF, "x", "", "ann@example.com")
        assert info.value.status == 403 and not info.value.retryable
        assert sleeps.delays == [] and len(fake.requests) == 1
    finally:
        await cal.close()


async def test_429_and_rate_limit_403_are_retried_with_backoff(fake: FakeGoogleCalendar) -> None:
    cal, sleeps = await calendar(fake, backoff_s=0.5)
    fake.faults = [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded")]
    try:
        assert await cal.free_busy(AT, AT + HALF) == []
        assert sleeps.delays == [0.5, 1.0] and cal.retries == 2
        fake.faults = [(429, "rateLimitExceeded")]
        fake.retry_after = "3"
        await cal.free_busy(AT, AT + HALF)
        assert sleeps.delays[-1] == 3.0
    finally:
        await cal.close()


async def test_5xx_retries_are_bounded(fake: FakeGoogleCalendar) -> None:
    cal, sleeps = await calendar(fake, max_attempts=3)
    fake.faults = [(503, "backendError")] * 5
    try:
        with pytest.raises(CalendarError, match="503") as info:
            await cal.free_busy(AT, AT + HALF)
        assert info.value.retryable and len(sleeps.delays) == 2
        assert len(fake.requests) == 3
    finally:
        await cal.close()


async def test_a_hanging_calendar_times_out(fake: FakeGoogleCalendar) -> None:
    cal, _ = await calendar(fake, timeout_s=0.3, max_attempts=2)
    await cal.free_busy(AT, AT + HALF)  # the token first
    fake.hang_s = 1.0
    started = time.monotonic()
    try:
        with pytest.raises(CalendarError, match="unreachable") as info:
            await cal.free_busy(AT, AT + HALF)
        assert info.value.retryable
        assert time.monotonic() - started < 3.0
    finally:
        fake.hang_s = 0.0
        await cal.close()


async def test_a_retried_insert_reads_back_the_event_it_already_made(
        fake: FakeGoogleCalendar) -> None:
    cal, _ = await calendar(fake)
    try:
        first = await cal.create_event(AT, AT + HALF, "x", "", "ann@example.com", key="k1")
        again = await cal.create_event(AT, AT + HALF, "x", "", "ann@example.com", key="k1")
        assert again == first and len(fake.events) == 1
        assert fake.requests[-1].method == "GET"
    finally:
        await cal.close()


def _service_account_file(tmp_path: Path, fake: FakeGoogleCalendar) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.service_account_public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "leadline-test", "private_key_id": "k1",
        "private_key": pem, "client_email": "booker@leadline-test.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


async def test_service_account_needs_delegation_to_invite(
        fake: FakeGoogleCalendar, tmp_path: Path) -> None:
    key = _service_account_file(tmp_path, fake)
    plain = GoogleCalendar(GoogleCalendarSettings(
        calendar_id=fake.calendar_id, credentials_file=str(key), base_url=fake.base_url,
        token_url=fake.token_url), sleep=Sleeps())
    delegated = GoogleCalendar(GoogleCalendarSettings(
        calendar_id=fake.calendar_id, credentials_file=str(key), subject="owner@example.com",
        base_url=fake.base_url, token_url=fake.token_url), sleep=Sleeps())
    try:
        with pytest.raises(CalendarError, match="domain-wide delegation") as info:
            await plain.create_event(AT, AT + HALF, "x", "", "ann@example.com")
        assert info.value.status == 403
        event = await delegated.create_event(AT, AT + HALF, "x", "", "ann@example.com")
        assert fake.events[event.event_id]["attendees"][0]["email"] == "ann@example.com"
        assert [c.get("sub") for c in fake.jwt_claims] == [None, "owner@example.com"]
        assert fake.jwt_claims[1]["iss"] == "booker@leadline-test.iam.gserviceaccount.com"
        assert fake.jwt_claims[1]["scope"] == "https://www.googleapis.com/auth/calendar"
    finally:
        await plain.close()
        await delegated.close()


async def test_unknown_calendar_and_bad_key_file(fake: FakeGoogleCalendar, tmp_path: Path) -> None:
    cal, _ = await calendar(fake, calendar_id="nobody@example.com")
    try:
        with pytest.raises(CalendarError, match="notFound"):
            await cal.free_busy(AT, AT + HALF)
    finally:
        await cal.close()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(CalendarError, match="not a JSON object"):
        GoogleCalendar(GoogleCalendarSettings(credentials_file=str(bad)))
    with pytest.raises(CalendarError, match="cannot be read"):
        GoogleCalendar(GoogleCalendarSettings(credentials_file=str(tmp_path / "missing.json")))


def test_event_ids_are_valid_google_ids() -> None:
    ids = {event_id_for(f"key{i}") for i in range(100)}
    assert len(ids) == 100
    assert all(5 <= len(i) <= 1024 and set(i) <= set("0123456789abcdefghijklmnopqrstuv")
               for i in ids)
