"""Both SQL backends for real: a temp SQLite file and a fresh schema on the test PostgreSQL
(no skip when the server is missing: the test fails)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from store.database import Database, open_database

PG_URL = os.environ.get(
    "LEADLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextlib.asynccontextmanager
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/compliance.db"
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_url(request.param, tmp_path) as url:
        database = await open_database(url)
        try:
            yield database
        finally:
            await database.close()
