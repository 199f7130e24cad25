"""Faults: PostgreSQL unreachable, SQLite unwritable or full, a schema from the future."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import asyncpg
import pytest

from store import migrations
from store.database import open_database, redact_url
from store.errors import SchemaTooNew, StoreError, StoreUnavailable, StoreWriteError
from store.models import LeadInput, Turn, utcnow
from store.sqlite import SqliteDatabase
from tests.store.conftest import PG_URL, pg_schema


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_postgres_unreachable_is_a_clear_error_naming_the_host() -> None:
    port = closed_port()
    url = f"postgresql://leadline:s3cret@127.0.0.1:{port}/calls"
    with pytest.raises(StoreUnavailable) as info:
        await open_database(url, connect_timeout_s=2)
    message = str(info.value)
    assert f"127.0.0.1:{port}/calls" in message
    assert "s3cret" not in message


async def test_postgres_unknown_database_is_unavailable_too() -> None:
    base = PG_URL.rsplit("/", 1)[0]
    with pytest.raises(StoreUnavailable, match="no_such_db_leadline"):
        await open_database(f"{base}/no_such_db_leadline", connect_timeout_s=2)


def test_unsupported_url_names_the_choices() -> None:
    with pytest.raises(ValueError, match="sqlite:///"):
        asyncio.run(open_database("mysql://root:pw@db/x"))


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("postgresql://u:pw@h:1/d") == "postgresql://u:***@h:1/d"
    assert redact_url("sqlite:///./data/x.db") == "sqlite:///./data/x.db"


async def test_sqlite_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable, match=r"store\.db"):
        await open_database(f"sqlite:///{blocker}/sub/store.db")


async def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"bogus\.db"):
        await open_database(f"sqlite:///{bogus}")


async def test_sqlite_disk_full_is_reported_counted_and_recoverable(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/full.db")
    assert isinstance(db, SqliteDatabase)
    try:
        await db.set_caller_name("+14155552671", "Maria")
        # The file may not grow any more: SQLite reports SQLITE_FULL exactly as for a full disk.
        pages = (await db._writer.execute_fetchall("PRAGMA page_count"))[0][0]
        await db._writer.execute(f"PRAGMA max_page_count = {pages}")
        now = utcnow()
        big = [Turn("CA1", i, "caller", "x" * 2000, now) for i in range(200)]
        with pytest.raises(StoreWriteError, match="full"):
            await db.add_turns(big)
        assert db.stats.write_errors == 1
        assert "full" in db.stats.last_write_error
        # reads still work, and nothing half-written is visible
        caller = await db.get_caller("+14155552671")
        assert caller is not None and caller.name == "Maria"
        assert await db.get_call("CA1") is None
        # space comes back: writes work again
        await db._writer.execute("PRAGMA max_page_count = 1073741823")
        assert await db.add_turns(big) == 200
    finally:
        await db.close()


async def test_schema_newer_than_this_build_is_refused(db_url: str) -> None:
    db = await open_database(db_url)
    try:
        await db.audit("setup")
        if db.backend == "sqlite":
            assert isinstance(db, SqliteDatabase)
            await db._writer.execute(
                "INSERT INTO schema_migrations VALUES (99, 'future', '2099-01-01')"
            )
        else:
            conn = await asyncpg.connect(db_url)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'f')")
            await conn.close()
    finally:
        await db.close()
    with pytest.raises(SchemaTooNew, match="99"):
        await open_database(db_url)


async def test_concurrent_postgres_starts_migrate_once() -> None:
    async with pg_schema() as url:
        dbs = await asyncio.gather(*(open_database(url) for _ in range(4)))
        try:
            latest = len(migrations.load("postgres"))
            assert [await d.schema_version() for d in dbs] == [latest] * 4
            conn = await asyncpg.connect(url)
            try:
                assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == latest
            finally:
                await conn.close()
        finally:
            for d in dbs:
                await d.close()


async def test_postgres_schema_missing_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="schema"):
        await open_database(f"{PG_URL}?search_path=t_does_not_exist_xyz")


async def test_a_lead_batch_on_a_full_disk_is_refused_whole_and_counted(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/full.db")
    assert isinstance(db, SqliteDatabase)
    try:
        await db.upsert_leads([LeadInput("+14155552671", first_name="Maria")])
        pages = (await db._writer.execute_fetchall("PRAGMA page_count"))[0][0]
        await db._writer.execute(f"PRAGMA max_page_count = {pages}")
        batch = [LeadInput(f"+1415555{n:04d}", attributes={"note": "x" * 1500})
                 for n in range(100, 1100)]
        with pytest.raises(StoreWriteError, match="full"):
            await db.upsert_leads(batch)
        assert db.stats.write_errors == 1
        assert [lead.phone for lead in await db.list_leads()] == ["+14155552671"]
        await db._writer.execute("PRAGMA max_page_count = 1073741823")
        assert (await db.upsert_leads(batch)).created == 1000
    finally:
        await db.close()


async def test_postgres_lost_mid_claim_is_unavailable_and_counted() -> None:
    async with pg_schema() as url:
        db = await open_database(url, pool_min_size=1, pool_max_size=1)
        try:
            await db.queue_outbound_message(
                phone="+14155552671", channel="sms", purpose="marketing", body="x",
                from_addr="+15005550006", to_addr="+14155552671", segments=1,
                idempotency_key="k1")
            row = await db.fetchrow("SELECT pg_backend_pid()")  # type: ignore[attr-defined]
            admin = await asyncpg.connect(url)
            try:
                # Hold the table so the claim waits inside its transaction, then kill only
                # this database's one pooled connection (the server is shared).
                locker = admin.transaction()
                await locker.start()
                await admin.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
                claim = asyncio.ensure_future(
                    db.claim_outbox(now=utcnow(), limit=10, lease_s=30))
                for _ in range(100):
                    waiting = await admin.fetchval(
                        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                        row[0])
                    if waiting:
                        break
                    await asyncio.sleep(0.05)
                assert waiting, "the claim never reached the lock"
                await admin.execute("SELECT pg_terminate_backend($1)", row[0])
                with pytest.raises(StoreUnavailable, match="outbox claim"):
                    await asyncio.wait_for(claim, timeout=10)
                await locker.rollback()
            finally:
                await admin.close()
            assert db.stats.write_errors == 1
            # the pool reconnects: the next claim works and finds the row untouched
            (item,) = await db.claim_outbox(now=utcnow(), limit=10, lease_s=30)
            assert item.attempts == 1
        finally:
            await db.close()


async def test_postgres_connection_confused_by_a_restart_is_unavailable_not_a_bug() -> None:
    """`pg_ctl restart -m fast` under load (benchmarks/chaos.sh): a pooled connection the
    server had terminated failed its next BEGIN with asyncpg's InternalClientError ("cannot
    switch to state …"), which the write-behind lanes took for a bug and dropped the call's
    start record. It is a lost connection: StoreUnavailable, so the lane retries it."""

    class _Confused:
        def transaction(self) -> _Confused:
            return self

        async def __aenter__(self) -> None:
            raise asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress")

        async def __aexit__(self, *exc: object) -> None:
            return None

    class _Pool:
        def acquire(self) -> _Acquire:
            return _Acquire()

    class _Acquire:
        async def __aenter__(self) -> _Confused:
            return _Confused()

        async def __aexit__(self, *exc: object) -> None:
            return None

    from store.postgres import PostgresDatabase

    db = PostgresDatabase("127.0.0.1:1/x", _Pool())  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable, match="lost during call start"):
        async with db.transaction("call start"):
            pass
    assert db.stats.write_errors == 1
