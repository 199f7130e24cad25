"""Fixtures for the SMS tests: both SQL backends for real, the Twilio REST fake, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store.database import Database, open_database
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.store.conftest import BACKENDS, backend_url

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sms-test-token-0123456789"
OUR_NUMBER = "+14155550123"


class Clock:
    """Wall time the code under test sees; tests move it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with backend_url(request.param, tmp_path) as url:
        database = await open_database(url)
        try:
            yield database
        finally:
            await database.close()


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioRest]:
    fake = await FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN).start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def clock() -> Clock:
    # A Tuesday, 17:00 UTC: inside the sending window in every US zone.
    return Clock(datetime(2026, 6, 9, 17, 0, tzinfo=UTC))
