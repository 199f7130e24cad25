"""Two scheduler processes' worth of connections on one PostgreSQL, passing at the same
instants: every touch goes out exactly once, none is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sms.campaigns import service
from store.campaign_models import TOUCH_KEY_PREFIX
from store.database import open_database
from store.models import LeadInput
from tests.sms.campaigns.conftest import CAMPAIGN_TOML, make_scheduler, provider_accepts
from tests.sms.conftest import Clock
from tests.store.conftest import pg_schema


async def test_two_schedulers_on_one_postgresql_send_each_touch_once() -> None:
    async with pg_schema() as url:
        a = await open_database(url)
        b = await open_database(url)
        try:
            start = datetime(2026, 6, 8, 16, 0, tzinfo=UTC)
            clock = Clock(start)
            a.clock = b.clock = clock  # type: ignore[attr-defined]
            phones = [f"+1{area}555{i:04d}" for i in range(60) for area in ("212", "415")]
            await a.upsert_leads([LeadInput(phone=p, first_name="X") for p in phones])
            await service.load(a, CAMPAIGN_TOML)  # type: ignore[arg-type]
            await service.enroll(a, "reactivation", everyone=True, now=start)  # type: ignore[arg-type]
            # Small batches, so the two passes interleave claim by claim.
            s1 = make_scheduler(a, clock, batch=7)
            s2 = make_scheduler(b, clock, batch=7)
            totals = Counter[str]()
            while clock.at < start + timedelta(days=16):
                r1, r2 = await asyncio.gather(s1.tick(clock()), s2.tick(clock()))
                totals["a"] += len(r1.sent)
                totals["b"] += len(r2.sent)
                await provider_accepts(a, clock())
                clock.advance(hours=2)
            keys: Counter[str] = Counter()
            for p in phones:
                for m in await a.list_messages(p, limit=100):
                    if (m.idempotency_key or "").startswith(TOUCH_KEY_PREFIX):
                        keys[m.idempotency_key or ""] += 1
            assert len(keys) == 3 * len(phones) and set(keys.values()) == {1}
            assert totals["a"] + totals["b"] == 3 * len(phones)
            assert totals["a"] > 0 and totals["b"] > 0  # both did part of the work
        finally:
            await a.close()
            await b.close()
