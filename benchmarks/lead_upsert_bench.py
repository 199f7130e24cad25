"""Store benchmark: `Database.upsert_leads` throughput, the SQL half of a lead import.

    .venv/bin/python -m benchmarks.lead_upsert_bench [--rows 100000] [--batch 1000]
        [--backends sqlite,postgresql] [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Three passes over the same generated leads, in batches as the CSV importer sends
them: "create" (empty table), "unchanged" (the same rows again: one SELECT per
batch, nothing written), "update" (every lead gets a new attribute). Only the
upsert_leads calls are timed. By default each batch's phones were just
normalised, as the importer does while reading the CSV; with --national the
store parses every '(415) 555-0100' itself (~100-200 µs each, the worst case).
CSV parsing is not included (benchmarks/leads_import_bench.py times the whole
command). `client_cpu_s` is this process's CPU (threads included: SQLite works in
aiosqlite's thread; PostgreSQL's server CPU is not in it), steadier than wall time
on a shared machine. Prints one JSON line per backend and pass. PostgreSQL
runs in a throwaway schema, dropped at the end; SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from store.database import open_database
from store.models import LeadInput
from store.phones import normalize_phone

AREAS = (212, 310, 415, 646, 718, 917, 202, 305, 312, 617)
DEFAULT_PG = os.environ.get(
    "LEADLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Bounds, so a typo cannot start a run that takes the shared machine for an hour.
MAX_ROWS = 1_000_000


def phone(i: int, national: bool) -> str:
    """The i-th of 1,000,000 distinct valid US numbers, as E.164 or in a national spelling."""
    area = AREAS[i // 100_000]
    exchange = 200 + (i // 10_000) % 100
    if national:
        return f"({area}) {exchange}-{i % 10_000:04d}"
    return f"+1{area}{exchange}{i % 10_000:04d}"


def leads(n: int, national: bool, tag: str | None = None) -> list[LeadInput]:
    extra = {} if tag is None else {"campaign": tag}
    return [
        LeadInput(
            phone(i, national), first_name=f"Zoë {i}", last_name="O'Brien",
            email=f"z{i}@example.com",
            state=("CA", "NY", "TX", "FL")[i % 4], source="bench",
            attributes={"zip": f"{94000 + i % 1000}", **extra},
        )
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def database_url(backend: str, pg_url: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lead-upsert-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_url, timeout=5)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def run(backend: str, rows: int, batch: int, pg_url: str, national: bool) -> None:
    passes = {
        "create": leads(rows, national),
        "unchanged": None,
        "update": leads(rows, national, "spring"),
    }
    passes["unchanged"] = passes["create"]
    async with database_url(backend, pg_url) as url:
        db = await open_database(url)
        try:
            for label, data in passes.items():
                assert data is not None
                totals = [0, 0, 0]
                wall = cpu = 0.0
                for offset in range(0, len(data), batch):
                    chunk = data[offset:offset + batch]
                    if not national:
                        # The importer's own check of each row, just before it sends the
                        # batch (not timed: it is CSV work, not store work).
                        for lead in chunk:
                            normalize_phone(lead.phone)
                    start, start_cpu = time.perf_counter(), time.process_time()
                    result = await db.upsert_leads(chunk)
                    wall += time.perf_counter() - start
                    cpu += time.process_time() - start_cpu
                    totals[0] += result.created
                    totals[1] += result.updated
                    totals[2] += result.unchanged
                emit(bench="lead_upsert", backend=backend, run=label, rows=rows, batch=batch,
                     phones="national" if national else "e164",
                     wall_s=round(wall, 2), rows_per_s=round(rows / wall),
                     client_cpu_s=round(cpu, 2),
                     created=totals[0], updated=totals[1], unchanged=totals[2])
        finally:
            await db.close()


def emit(**fields: object) -> None:
    sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--national", action="store_true",
                        help="phones as '(415) 555-0100', not checked before the store")
    args = parser.parse_args()
    if not 1 <= args.rows <= MAX_ROWS or not 1 <= args.batch <= 10_000:
        parser.error(f"--rows must be 1..{MAX_ROWS} and --batch 1..10000")
    for backend in args.backends.split(","):
        asyncio.run(run(backend.strip(), args.rows, args.batch, args.pg_url, args.national))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
