"""Store benchmark: caller lookup latency with 1 M callers, and turns/s through TurnWriter.

    .venv/bin/python -m benchmarks.store_bench [--callers 1000000] [--turns 50000]
        [--backends sqlite,postgresql] [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Prints one JSON line per figure. Targets: lookup p99 <= 2 ms with 1 M callers
(the greeting waits on it, within a 100 ms budget shared with the network), and
>= 5,000 turns/s persisted (every turn of every call goes through it), on each
backend. The lookup is the public `get_caller(phone)`, phone normalisation
included, as the greeting path calls it. PostgreSQL runs in a throwaway schema, dropped at the end;
SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import msgspec

from store.database import Database, open_database
from store.models import Turn, utcnow
from store.turn_writer import TurnWriter

AREAS = (212, 310, 415, 646, 718, 917, 202, 305, 312, 617)
DEFAULT_PG = os.environ.get(
    "LEADLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def phone(i: int) -> str:
    """The i-th of 1,000,000 distinct valid US numbers (10 areas x 100 exchanges x 10^4)."""
    area = AREAS[i // 100_000]
    exchange = 200 + (i // 10_000) % 100
    return f"+1{area}{exchange}{i % 10_000:04d}"


def rows(n: int) -> Iterator[tuple[str, str | None]]:
    for i in range(n):
        yield phone(i), (f"Caller {i}" if i % 3 else None)


def percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, round(q * (len(sorted_ns) - 1)))
    return sorted_ns[index] / 1000


def emit(**fields: object) -> None:
    sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
    sys.stdout.flush()


@contextlib.asynccontextmanager
async def database(backend: str, pg_url: str) -> AsyncIterator[tuple[Database, Path]]:
    with tempfile.TemporaryDirectory(prefix="leadline-bench-") as tmp:
        if backend == "sqlite":
            db = await open_database(f"sqlite:///{tmp}/bench.db")
            try:
                yield db, Path(tmp)
            finally:
                await db.close()
            return
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in pg_url else "?"
        try:
            db = await open_database(f"{pg_url}{sep}search_path={schema}")
            try:
                yield db, Path(tmp)
            finally:
                await db.close()
        finally:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()


async def bench_lookup(db: Database, backend: str, callers: int, samples: int) -> None:
    started = time.perf_counter()
    loaded = await db.bulk_load_callers(rows(callers))
    load_s = time.perf_counter() - started
    rng = random.Random(4)
    # 90 % returning callers (hits), 10 % first-time callers (misses), as on a real line.
    probes = [phone(rng.randrange(callers)) if rng.random() < 0.9 else
              f"+1{AREAS[rng.randrange(10)]}3{rng.randrange(10**6):06d}" for _ in range(samples)]
    for probe in probes[:500]:  # warm caches and the pool
        await db.get_caller(probe)
    timings: list[int] = []
    hits = 0
    for probe in probes:
        t0 = time.perf_counter_ns()
        caller = await db.get_caller(probe)
        timings.append(time.perf_counter_ns() - t0)
        hits += caller is not None
    timings.sort()
    emit(bench="caller_lookup", backend=backend, callers=loaded, samples=samples, hits=hits,
         p50_us=round(percentile(timings, 0.50), 1), p99_us=round(percentile(timings, 0.99), 1),
         max_us=round(timings[-1] / 1000, 1), bulk_load_s=round(load_s, 2))


async def bench_turns(db: Database, backend: str, journal: Path, turns: int) -> None:
    from store.settings import StoreSettings

    cfg = StoreSettings()
    writer = TurnWriter(db, journal, cfg.turn_batch_size, cfg.turn_flush_interval_s)
    await writer.start()
    calls = max(1, turns // 50)
    now = utcnow()
    batch = [Turn(f"CA{c:08d}", s, "caller" if s % 2 else "agent",
                  "I would like to book an appointment for Tuesday afternoon, please.", now)
             for s in range(turns // calls) for c in range(calls)]
    record_ns: list[int] = []
    started = time.perf_counter()
    for i, turn in enumerate(batch):
        t0 = time.perf_counter_ns()
        writer.record(turn)
        record_ns.append(time.perf_counter_ns() - t0)
        if i % 100 == 99:
            await asyncio.sleep(0)  # the event loop carries on, as it would with live calls
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.close()
    record_ns.sort()
    emit(bench="turns_persisted", backend=backend, turns=len(batch), calls=calls,
         batch_size=cfg.turn_batch_size, flush_interval_s=cfg.turn_flush_interval_s,
         turns_per_s=round(len(batch) / elapsed), seconds=round(elapsed, 2),
         record_p50_us=round(percentile(record_ns, 0.5), 1),
         record_p99_us=round(percentile(record_ns, 0.99), 1),
         journal_errors=writer.stats.journal_errors, flush_failures=writer.stats.flush_failures)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callers", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--turns", type=int, default=50_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args(argv)
    if not 1 <= args.callers <= 1_000_000:
        parser.error("--callers must be between 1 and 1000000")
    for backend in args.backends.split(","):
        async with database(backend, args.pg_url) as (db, tmp):
            await bench_lookup(db, backend, args.callers, args.samples)
            await bench_turns(db, backend, tmp / "journal", args.turns)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
