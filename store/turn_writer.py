"""Write-behind for turns: the conversation never waits for SQL, and SIGKILL loses nothing.

`record(turn)` is synchronous and cheap (one `os.write` of a JSON line into the
current journal segment, one list append): call it from the event loop the
moment a turn is committed. A background task seals the segment every
`flush_interval_s` (or as soon as `batch_size` turns are waiting), upserts its
turns into SQL in one transaction, and only then deletes the segment.

Guarantees:
- process death (SIGKILL, crash, OOM kill) after `record()` returned: no turn
  lost. The line is in the kernel; the next `start()` (in this or any process
  using the same directory) replays orphaned segments, and the upsert on
  (call_sid, seq) makes replaying a turn already in SQL harmless.
- OS crash / power loss: turns recorded within about `flush_interval_s` before
  it may be lost while SQL is healthy (they are committed there that quickly).
  When SQL is failing, segments waiting for it are fsynced, so a long outage
  does not widen that window.
- SQL down: turns wait on disk (and, up to `max_buffered` turns, in memory)
  and are retried in order with backoff; a full journal disk is counted in
  `stats.journal_errors` and the turn still goes to SQL from memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from pathlib import Path

import msgspec

from store import journal
from store.database import Database
from store.errors import StoreError
from store.models import Turn

log = logging.getLogger(__name__)

# Largest single SQL transaction when catching up on a backlog.
MAX_SQL_BATCH = 5000
MAX_RETRY_DELAY_S = 5.0


class TurnWriterStats(msgspec.Struct):
    recorded: int = 0
    flushed: int = 0
    replayed: int = 0
    flush_failures: int = 0
    journal_errors: int = 0
    # Turns lost: journal unwritable AND the memory bound hit while SQL was down.
    dropped: int = 0
    # Unreadable journal lines skipped on replay (a torn last write).
    bad_lines: int = 0
    last_error: str = ""


class _Sealed:
    """A closed segment waiting for SQL. `turns` None: not in memory, read the file."""

    __slots__ = ("count", "segment", "turns")

    def __init__(self, segment: journal.Segment | None, turns: list[Turn] | None, count: int):
        self.segment = segment
        self.turns = turns
        self.count = count


class TurnWriter:
    def __init__(
        self,
        db: Database,
        journal_dir: str | Path,
        batch_size: int = 200,
        flush_interval_s: float = 0.25,
        *,
        max_buffered: int = 100_000,
    ):
        if batch_size < 1 or flush_interval_s <= 0 or max_buffered < batch_size:
            raise ValueError("need batch_size >= 1, flush_interval_s > 0, max_buffered >= batch")
        self._db = db
        self._dir = Path(journal_dir)
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._max_buffered = max_buffered
        self.stats = TurnWriterStats()
        self._encoder = msgspec.json.Encoder()
        self._line = bytearray()
        self._segment: journal.Segment | None = None
        self._pending: list[Turn] = []
        self._sealed: collections.deque[_Sealed] = collections.deque()
        self._buffered = 0  # turns held in memory by _sealed
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Recorded turns not yet acknowledged by SQL."""
        return len(self._pending) + sum(s.count for s in self._sealed)

    # the hot side ------------------------------------------------------------

    def record(self, turn: Turn) -> None:
        """Journal the turn and queue it for SQL. Never awaits, never raises on I/O."""
        if not self._started or self._closed:
            raise RuntimeError("TurnWriter.record() outside start() … close()")
        self.stats.recorded += 1
        segment = self._segment
        if segment is not None:
            journal.encode_into(turn, self._line, self._encoder)
            try:
                segment.append(self._line)
            except OSError as exc:
                self._journal_failed(exc)
        self._pending.append(turn)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def flush_soon(self) -> None:
        """Ask for a flush now (a call ended) without waiting for it."""
        self._wake.set()

    # lifecycle ---------------------------------------------------------------

    async def start(self) -> int:
        """Open a journal segment, replay orphaned ones, start flushing.

        Returns how many orphaned turns were written to SQL now; if SQL is down
        they stay queued (and on disk) and the writer starts anyway.
        """
        if self._started:
            raise RuntimeError("TurnWriter already started")
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        orphans = await asyncio.to_thread(journal.claim_orphans, self._dir)
        for segment in orphans:
            self._sealed.append(_Sealed(segment, None, 0))
        self._segment = await asyncio.to_thread(journal.Segment.create, self._dir)
        self._started = True
        before = self.stats.flushed
        if orphans:
            with contextlib.suppress(StoreError):
                await self._flush()
        self.stats.replayed = self.stats.flushed - before
        self._task = asyncio.create_task(self._run(), name="turn-writer")
        return self.stats.replayed

    async def flush(self) -> None:
        """Write everything recorded so far to SQL now; raises StoreError if SQL refuses
        (the turns stay queued and journaled)."""
        await self._flush()

    async def close(self) -> None:
        """Final flush. Turns SQL did not take stay in the journal for the next start."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._flush()
        except StoreError as exc:
            log.warning("turn writer closing with %d turns unflushed: %s", self.pending, exc)
        for sealed in self._sealed:
            if sealed.segment is not None:
                await asyncio.to_thread(_sync_and_release, sealed.segment)
        if self._segment is not None:
            segment, self._segment = self._segment, None
            if self._pending:
                await asyncio.to_thread(_sync_and_release, segment)
            else:
                await asyncio.to_thread(segment.remove)

    # the background side -----------------------------------------------------

    async def _run(self) -> None:
        delay = self._interval
        failing = False
        while True:
            if failing:
                await asyncio.sleep(delay)  # back off: full batches do not bring retries forward
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                await self._flush()
            except StoreError:
                failing = True
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
            except Exception:  # a bug must not stop the writer for every later call
                log.exception("turn writer flush failed")
                failing, delay = True, MAX_RETRY_DELAY_S
            else:
                failing, delay = False, self._interval

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._seal()
            while self._sealed:
                sealed = self._sealed[0]
                turns = sealed.turns
                if turns is None:
                    turns = await self._load(sealed)
                try:
                    for start in range(0, len(turns), MAX_SQL_BATCH):
                        await self._db.add_turns(turns[start:start + MAX_SQL_BATCH])
                except StoreError as exc:
                    self.stats.flush_failures += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    await self._wait_on_disk(sealed)
                    raise
                self._sealed.popleft()
                if sealed.turns is not None:
                    self._buffered -= len(sealed.turns)
                self.stats.flushed += len(turns)
                if sealed.segment is not None:
                    try:
                        sealed.segment.remove()
                    except OSError as exc:
                        self._journal_failed(exc)

    def _seal(self) -> None:
        """Close the current segment for flushing and start a new one (sync: no turn can
        land between the two)."""
        if not self._pending:
            return
        turns, self._pending = self._pending, []
        self._sealed.append(_Sealed(self._segment, turns, len(turns)))
        self._buffered += len(turns)
        try:
            self._segment = journal.Segment.create(self._dir)
        except OSError as exc:
            self._segment = None
            self._journal_failed(exc)
        self._bound_memory()

    def _bound_memory(self) -> None:
        """Over `max_buffered`, forget the oldest in-memory batches that are safe on disk
        (they are re-read when SQL is back); drop (and count) only batches whose journal
        file is missing or short, which needs a full disk and a long SQL outage at once."""
        for sealed in self._sealed:
            if self._buffered <= self._max_buffered:
                return
            if sealed.turns is None:
                continue
            self._buffered -= len(sealed.turns)
            if sealed.segment is None or sealed.segment.incomplete:
                self.stats.dropped += sealed.count
                sealed.count = 0
                sealed.turns = []
            else:
                sealed.turns = None

    async def _load(self, sealed: _Sealed) -> list[Turn]:
        assert sealed.segment is not None
        turns, bad = await asyncio.to_thread(journal.read_turns, sealed.segment.path)
        self.stats.bad_lines += bad
        sealed.count = len(turns)
        return turns

    async def _wait_on_disk(self, sealed: _Sealed) -> None:
        """SQL refused: make the journal durable against power loss while we wait."""
        if sealed.segment is None:
            return
        try:
            await asyncio.to_thread(sealed.segment.sync)
        except OSError as exc:
            self._journal_failed(exc)

    def _journal_failed(self, exc: OSError) -> None:
        self.stats.journal_errors += 1
        self.stats.last_error = f"journal: {type(exc).__name__}: {exc}"


def _sync_and_release(segment: journal.Segment) -> None:
    try:
        segment.sync()
    finally:
        segment.release()
