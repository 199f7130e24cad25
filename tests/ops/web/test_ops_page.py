"""The ops page in Debian's headless Chromium (system browser and chromedriver, driven by
selenium; never a downloaded browser): a live simulated call shows as 1 active call
without a reload, the campaign funnel renders, personal data needs a token, a lead
named like a script is shown as text and runs nothing, the console stays clean, and a
screenshot is taken (into docs/ops-page.png only with LEADLINE_UPDATE_SCREENSHOT=1, so a
test run never rewrites a tracked file)."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from ops.dev.sim import SimOptions, sim_call
from store.models import LeadInput
from tests.audio import speech_ulaw
from tests.helpers import AUTH_TOKEN, calls_closed, eventually, start_server

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "ops-page.png"
NASTY = "<script>alert(1)</script>"


def _browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        if os.environ.get("LEADLINE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    os.environ["SE_AVOID_BROWSER_DOWNLOAD"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1400"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _wait(driver, check, what: str, limit_s: float = 15.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, limit_s, poll_frequency=0.1).until(
        lambda d: check(d), message=what)


async def _seed(db) -> None:
    await db.upsert_leads([LeadInput(phone="+14155550142", first_name=NASTY,
                                     last_name="Tables'); DROP TABLE leads;--")])
    await db.record_inbound_message(phone="+14155550142", channel="sms",
                                    body=f"hi {NASTY} <img src=x onerror=alert(2)>",
                                    from_addr="+14155550142", to_addr="+14155550000",
                                    provider_sid="SMops1", segments=1)
    campaign, _ = await db.save_campaign("spring-promo", "default",
                                         {"name": "spring-promo", "touches": []})
    # Due in a month: the running scheduler leaves it alone during the test.
    await db.enroll(campaign.id, ["+14155550142"], channel="sms",
                    due_at=datetime.now(UTC) + timedelta(days=30))


async def test_ops_page_live_call_funnel_and_escaping(tmp_path):
    srv, runner = await start_server({
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages")})
    driver = None
    sim_task = None
    try:
        db = srv.runtime.persistence.db
        await _seed(db)
        _, viewer = await db.create_api_token("viewer", label="ops page test")
        async with aiohttp.ClientSession() as s:
            async with s.get(srv.url + "/ops") as r:
                assert r.status == 200 and r.content_type == "text/html"
                page = await r.text()
                assert 'data-testid="active-calls"' in page
                assert NASTY not in page and "+14155550142" not in page
            async with s.get(srv.url + "/ops/summary.json") as r:
                summary = await r.text()
                assert "+14155550142" not in summary and NASTY not in summary
            async with s.get(srv.url + "/v1/leads") as r:
                assert r.status == 401
            async with s.get(srv.url + "/ops/static/..%2f__init__.py") as r:
                assert r.status == 404

        driver = await asyncio.to_thread(_browser)
        await asyncio.to_thread(driver.get, srv.url + "/ops")

        def count(d) -> str:
            return d.find_element("css selector", '[data-testid="active-calls"]').text

        assert await asyncio.to_thread(count, driver) == "0"
        # The funnel of the seeded campaign, drawn as SVG bars.
        await asyncio.to_thread(_wait, driver, lambda d: d.find_elements(
            "css selector", '[data-campaign="spring-promo"] svg rect'), "funnel bars")
        await asyncio.to_thread(_wait, driver, lambda d: len(d.find_elements(
            "css selector", "#latency svg")) == 3, "three latency plots")
        locked = await asyncio.to_thread(
            lambda: driver.find_element("css selector", '[data-testid="conv-locked"]')
            .is_displayed())
        assert locked

        sim_task = asyncio.create_task(sim_call(SimOptions(
            url=srv.url, auth_token=AUTH_TOKEN, hangup_after_s=30,
            audio=speech_ulaw("Hello, I would like to book an appointment for Tuesday."))))
        await asyncio.to_thread(_wait, driver, lambda d: count(d) == "1",
                                "the page shows 1 active call without a reload")
        row = await asyncio.to_thread(
            lambda: driver.find_element("css selector", "#calls tbody tr").text)
        assert "inbound" in row and "scripted" in row

        def sign_in() -> None:
            driver.find_element("id", "token").send_keys(viewer)
            driver.find_element("css selector", "#signin").click()

        await asyncio.to_thread(sign_in)
        item = await asyncio.to_thread(_wait, driver, lambda d: d.find_elements(
            "css selector", '#leads li[data-phone="+14155550142"]'), "the lead list")
        assert NASTY in await asyncio.to_thread(lambda: item[0].text)
        await asyncio.to_thread(item[0].click)
        bubble = await asyncio.to_thread(_wait, driver, lambda d: d.find_elements(
            "css selector", "#thread .bubble"), "the conversation thread")
        assert "<img src=x onerror=alert(2)>" in await asyncio.to_thread(
            lambda: bubble[0].text)

        def no_alert() -> bool:
            from selenium.common.exceptions import NoAlertPresentException

            try:
                driver.switch_to.alert  # noqa: B018  (raises when there is none)
            except NoAlertPresentException:
                return True
            return False

        assert await asyncio.to_thread(no_alert)
        assert await asyncio.to_thread(driver.execute_script,
                                       "return document.querySelectorAll('#leads script, "
                                       "#thread img, #thread script').length") == 0
        # The picture for the README: after the caller's first turn, so the latency
        # plots have samples, while the call is still live.
        await eventually(lambda: srv.runtime.engine.end_of_turns >= 1, "a committed turn",
                         limit_s=25)
        await asyncio.sleep(1.5)  # one more poll of the page
        await asyncio.to_thread(driver.execute_script, "window.scrollTo(0, 0)")
        shot = (SCREENSHOT if os.environ.get("LEADLINE_UPDATE_SCREENSHOT") == "1"
                else tmp_path / "ops-page.png")
        shot.parent.mkdir(exist_ok=True)
        assert await asyncio.to_thread(driver.save_screenshot, str(shot))
        assert shot.stat().st_size > 10_000  # a rendered page, not an empty canvas

        result = await sim_task
        sim_task = None
        assert result.protocol_errors == 0
        await calls_closed(srv)
        await asyncio.to_thread(_wait, driver, lambda d: count(d) == "0",
                                "the count goes back to 0 after the hang-up")
        logs = await asyncio.to_thread(driver.get_log, "browser")
        errors = [e for e in logs if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
    finally:
        if sim_task is not None:
            sim_task.cancel()
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        await runner.cleanup()
