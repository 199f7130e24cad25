"""Fixtures for the store tests: both SQL backends for real, real Redis, a cuttable TCP link.

PostgreSQL runs get a fresh schema per test (`CREATE SCHEMA t_<hex>`, reached
through `?search_path=`), dropped afterwards; if the server cannot be reached
the tests fail, they never skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from store.database import Database, open_database

PG_URL = os.environ.get(
    "LEADLINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

BACKENDS = ["sqlite", "postgresql"]


def with_search_path(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A new empty schema on the test server; yields a URL that lands in it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(PG_URL, schema)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@contextlib.asynccontextmanager
async def backend_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
    else:
        async with pg_schema() as url:
            yield url


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database on each backend (not yet opened)."""
    async with backend_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await open_database(db_url)
    try:
        yield database
    finally:
        await database.close()


class TcpLink:
    """A TCP proxy in front of Redis that a test can cut and restore on the same port:
    to the client this is Redis going away (connections reset, port closed) and coming
    back, without touching the machine's Redis server."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/15"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)


@pytest.fixture
async def redis_link() -> AsyncIterator[TcpLink]:
    client = aioredis.Redis.from_url(REDIS_URL)
    pool_kwargs = client.connection_pool.connection_kwargs
    host, port = pool_kwargs.get("host", "127.0.0.1"), int(pool_kwargs.get("port", 6379))
    await client.aclose()
    link = TcpLink(host, port)
    await link.up()
    try:
        yield link
    finally:
        if link._server is not None:
            await link.down()
