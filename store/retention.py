"""The retention policy applied on a schedule: old turns, recordings and call analyses go.

`retention_days` is read on every run through a callable, so a hot-reloaded
config takes effect at the next run without a restart; 0 turns retention off.
The rows go first (the database says which recording files they named), then
the files, in a worker thread because unlinking many files blocks.

A failed run is counted and reported to `on_error`; the schedule goes on, so a
database that is away at 03:00 is purged the next day rather than never.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from store.models import utcnow

if TYPE_CHECKING:
    from store.database import Database

log = logging.getLogger("leadline.store.retention")

# A purge runs at start, then this often.
RETENTION_EVERY_S = 24 * 3600.0


class RetentionStats(msgspec.Struct):
    """What the purges did so far (for /health); mutable, owned by one `Retention`."""

    purged_turns: int = 0
    purged_recordings: int = 0
    purged_analyses: int = 0
    failures: int = 0
    last_purge_at: str = ""


class Retention:
    """Purges `db` of what is older than `days()` days, now or on a schedule."""

    def __init__(self, db: Database, days: Callable[[], int],
                 on_error: Callable[[BaseException, str], None], *,
                 every_s: float = RETENTION_EVERY_S) -> None:
        self.db = db
        self.days = days
        self.every_s = every_s
        self.stats = RetentionStats()
        self._on_error = on_error

    async def purge_now(self) -> int:
        """Apply the retention now (no-op when it is 0); returns the turns deleted."""
        days = self.days()
        if days <= 0:
            return 0
        counts = await self.db.purge_older_than(days)
        removed = await asyncio.to_thread(remove_files, counts.recordings)
        stats = self.stats
        stats.purged_turns += counts.turns
        stats.purged_recordings += removed
        stats.purged_analyses += counts.analyses
        stats.last_purge_at = utcnow().isoformat()
        if counts.turns or removed or counts.analyses:
            log.info("retention purge", extra={"days": days, "turns": counts.turns,
                                               "recordings": removed,
                                               "analyses": counts.analyses})
        return counts.turns

    async def run(self) -> None:
        """At start, then every `every_s`, until cancelled."""
        while True:
            try:
                await self.purge_now()
            except Exception as exc:
                self.stats.failures += 1
                self._on_error(exc, "retention purge failed")
            await asyncio.sleep(self.every_s)


def remove_files(paths: list[str]) -> int:
    """Delete `paths` (blocking); returns how many existed. A file already gone is
    not an error: another process or an operator may have removed it first."""
    removed = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
            removed += 1
    return removed
