"""A process that records turns and reports each one, for the SIGKILL test to kill.

Usage: python -m tests.store.turn_writer_child URL JOURNAL_DIR COUNT BATCH INTERVAL
Prints "started", then the seq of every turn right after `record()` returned
(so every seq the parent has read was committed), then "done", then waits.
"""

from __future__ import annotations

import asyncio
import os
import sys

from store.database import open_database
from store.models import Turn, utcnow
from store.turn_writer import TurnWriter

CALL_SID = "CA-sigkill"


async def main(url: str, journal_dir: str, count: int, batch: int, interval: float) -> None:
    db = await open_database(url)
    writer = TurnWriter(db, journal_dir, batch_size=batch, flush_interval_s=interval)
    await writer.start()
    os.write(1, b"started\n")
    for seq in range(count):
        writer.record(Turn(CALL_SID, seq, "caller" if seq % 2 else "agent", f"turn {seq} ✓",
                           utcnow()))
        os.write(1, b"%d\n" % seq)
        if seq % 5 == 0:
            await asyncio.sleep(0.001)  # let the background flushes run in between
    os.write(1, b"done\n")
    await asyncio.sleep(3600)


if __name__ == "__main__":
    url, journal_dir, count, batch, interval = sys.argv[1:6]
    asyncio.run(main(url, journal_dir, int(count), int(batch), float(interval)))
