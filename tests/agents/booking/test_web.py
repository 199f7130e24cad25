"""The booking link through a real aiohttp server: signed links only, free slots as plain
HTML, a POST books once and needs the page's form token, bad input answered 400/403/409."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.booking.builtin import BuiltinCalendar
from agents.booking.link import (
    make_form_token,
    make_link_token,
    read_link_token,
)
from agents.booking.service import BookingService
from agents.booking.settings import BookingSettings
from agents.booking.web import BookingLink
from store.database import Database, open_database

NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # Wednesday, 09:00 Eastern
SECRET = "link-secret-for-tests"
ZONES = {"": "America/New_York", "Acme Plumbing": "America/Chicago"}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path}/store.db")
    yield database
    await database.close()


async def client_for(db: Database, **kw: object) -> TestClient:
    settings = BookingSettings(link_secret=SECRET, **kw)  # type: ignore[arg-type]
    service = BookingService(settings, BuiltinCalendar(lambda: db, "main",
                                                       buffer=timedelta(minutes=10)),
                             clock=lambda: NOW)
    app = web.Application()
    BookingLink(lambda: service, lambda: settings, ZONES.get).add_to(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def form_token(html: str) -> str:
    m = re.search(r'name="f" value="([^"]+)"', html)
    assert m is not None
    return m.group(1)


async def test_link_tokens_round_trip_and_refuse_forgeries() -> None:
    token = make_link_token(SECRET, "Acme Plumbing")
    assert read_link_token(SECRET, token) == "Acme Plumbing"
    assert read_link_token(SECRET, make_link_token(SECRET)) == ""
    assert read_link_token("other", token) is None
    assert read_link_token(SECRET, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    for junk in ("", ".", "x" * 300, "abc.def", "\x00.\x00"):
        assert read_link_token(SECRET, junk) is None


async def test_get_lists_slots_and_post_books(db: Database) -> None:
    client = await client_for(db)
    try:
        path = f"/book/{make_link_token(SECRET)}"
        page = await client.get(path)
        html = await page.text()
        assert page.status == 200 and page.content_type == "text/html"
        assert "Wednesday, December 2 at 10:00 AM Eastern" in html
        assert 'value="2026-12-02T10:00:00-05:00"' in html
        booked = await client.post(path, data={
            "f": form_token(html), "start": "2026-12-02T10:00:00-05:00",
            "email": "ann@example.com", "name": "Ann <b>Lee</b>"})
        body = await booked.text()
        assert booked.status == 200, body
        assert "booked for Wednesday, December 2 at 10:00 AM Eastern" in body
        rows = await db.bookings_between("main", NOW, NOW + timedelta(days=1))  # type: ignore[attr-defined]
        assert len(rows) == 1 and rows[0].attendee_email == "ann@example.com"
        again = await client.post(path, data={
            "f": form_token(html), "start": "2026-12-02T10:00:00-05:00",
            "email": "bob@example.com"})
        assert again.status == 409 and "just taken" in await again.text()
        after = await (await client.get(path)).text()
        assert 'value="2026-12-02T10:00:00-05:00"' not in after
    finally:
        await client.close()


async def test_business_links_and_viewer_zone(db: Database) -> None:
    client = await client_for(db)
    try:
        html = await (await client.get(f"/book/{make_link_token(SECRET, 'Acme Plumbing')}")).text()
        assert "Central" in html
        html = await (await client.get(f"/book/{make_link_token(SECRET)}",
                                       params={"tz": "America/Los_Angeles"})).text()
        assert "Wednesday, December 2 at 8:00 AM Pacific" in html
        unknown = await client.get(f"/book/{make_link_token(SECRET, 'Nobody')}")
        assert unknown.status == 404
    finally:
        await client.close()


async def test_links_must_be_signed_and_posts_need_the_form_token(db: Database) -> None:
    client = await client_for(db)
    try:
        assert (await client.get("/book")).status == 404  # public_link is off
        assert (await client.get("/book/forged.AAAAAAAAAAAAAAAAAAAAAA")).status == 404
        path = f"/book/{make_link_token(SECRET)}"
        for f in ("", "123.abc", make_form_token(SECRET, "other-link", 1e9)):
            refused = await client.post(path, data={
                "f": f, "start": "2026-12-02T10:00:00-05:00", "email": "a@example.com"})
            assert refused.status == 403
        html = await (await client.get(path)).text()
        bad = await client.post(path, data={"f": form_token(html), "start": "noon",
                                            "email": "a@example.com"})
        assert bad.status == 400 and "ISO 8601" in await bad.text()
        bad = await client.post(path, data={"f": form_token(html),
                                            "start": "2026-12-02T10:00:00-05:00",
                                            "email": "not-an-email"})
        assert bad.status == 400 and "valid email" in await bad.text()
        past = await client.post(path, data={"f": form_token(html),
                                             "start": "2026-12-01T10:00:00-05:00",
                                             "email": "a@example.com"})
        assert past.status == 400 and "past" in await past.text()
        big = await client.post(path, data={"f": "x" * 20_000})
        assert big.status == 413
    finally:
        await client.close()


async def test_public_link_serves_the_default_calendar(db: Database) -> None:
    client = await client_for(db, public_link=True)
    try:
        page = await client.get("/book")
        html = await page.text()
        assert page.status == 200 and "10:00 AM Eastern" in html
        ok = await client.post("/book", data={"f": form_token(html),
                                              "start": "2026-12-02T10:00:00-05:00",
                                              "email": "a@example.com"})
        assert ok.status == 200
    finally:
        await client.close()
