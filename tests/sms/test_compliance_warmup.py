"""The compliance engine's first-decision cost is paid in a thread at start, never on the
event loop, and a decision asked for meanwhile waits for it rather than paying it again.

Measured in a fresh interpreter: in this test process the phone data is usually loaded
already by earlier tests, which would make the cost (and the test) vanish.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import asyncio, json, sys, time
from datetime import UTC, datetime

async def main() -> None:
    from agents.compliance.settings import ComplianceSettings
    from sms.compliance import EngineCompliance
    from store.database import open_database
    from store.models import LeadInput

    db = await open_database("sqlite:///" + sys.argv[1])
    await db.migrate()
    await db.upsert_leads([LeadInput(phone="+13055550142", state="FL")])
    settings = ComplianceSettings()
    engine = EngineCompliance(db, lambda: settings)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    warming = engine.start_warm_up()
    returned_s = time.perf_counter() - t0
    # Asked for before the warm-up is done: waits for it (in the thread), loop stays free.
    answer = await engine.check("+13055550142", "conversation", now=datetime.now(UTC))
    first_check_s = time.perf_counter() - t0
    warm_s = await warming
    t1 = time.perf_counter()
    await engine.check("+13055550142", "conversation", now=datetime.now(UTC))
    second_check_s = time.perf_counter() - t1
    stop.set()
    await beat
    await db.close()
    print(json.dumps({"returned_s": returned_s, "warm_s": warm_s, "max_gap_s": max(gaps),
                      "first_check_s": first_check_s, "second_check_s": second_check_s,
                      "reason": answer.reason}))

asyncio.run(main())
'''


def test_warm_up_runs_off_the_loop_and_first_decisions_wait_for_it(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "w.db")],
                         capture_output=True, text=True, timeout=120, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["returned_s"] < 0.05  # start is not held up
    assert figures["warm_s"] > 0.2  # there was a real cost to take off the loop …
    # … and the loop kept ticking through it (a fraction of the cost, not all of it).
    assert figures["max_gap_s"] < max(0.25, figures["warm_s"] / 3), figures
    assert figures["first_check_s"] >= figures["warm_s"] * 0.9  # waited, did not redo it
    assert figures["second_check_s"] < 0.5
    assert figures["reason"]
