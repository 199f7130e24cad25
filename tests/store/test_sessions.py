"""Session store on the real Redis (db 15): sharing, bounds, and Redis going away mid-call."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from store.sessions import SessionStore
from store.settings import SessionsSettings
from tests.helpers import eventually
from tests.store.conftest import REDIS_URL, TcpLink


def settings(url: str, prefix: str, **overrides: object) -> SessionsSettings:
    base: dict[str, object] = {
        "redis_url": url,
        "key_prefix": prefix,
        "session_timeout": 600,
        "transcript_tail": 5,
        "op_timeout_s": 0.5,
        "health_interval_s": 0.05,
        "reconnect_max_backoff_s": 0.2,
    }
    base.update(overrides)
    return SessionsSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def started() -> AsyncIterator[Callable[[SessionsSettings], Awaitable[SessionStore]]]:
    stores: list[SessionStore] = []

    async def make(s: SessionsSettings) -> SessionStore:
        store = SessionStore(s)
        await store.start()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def fill(store: SessionStore, call_id: str) -> None:
    await store.set_fields(call_id, {"stage": "greeting", "caller": "+14155552671"})
    await store.set_flag(call_id, "returning")
    for i in range(7):
        await store.append_transcript(call_id, f"line {i}")
    await store.incr(call_id, "turns", 3)


async def test_memory_only_when_not_configured(started) -> None:  # type: ignore[no-untyped-def]
    store = await started(SessionsSettings())
    await fill(store, "CA1")
    session = await store.get("CA1")
    assert session is not None
    assert session.fields == {"stage": "greeting", "caller": "+14155552671"}
    assert session.flags == ["returning"]
    assert session.transcript[-1] == "line 6" and len(session.transcript) == 50 - 43
    assert session.counters == {"turns": 3}
    status = store.status()
    assert (status["configured"], status["connected"]) == (False, False)
    assert status["sessions"]["memory"] == 1


async def test_state_is_shared_through_redis_with_ttl_and_bounded_tail(
    started, raw: aioredis.Redis, redis_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    one = await started(settings(REDIS_URL, redis_prefix))
    other = await started(settings(REDIS_URL, redis_prefix))  # another server process
    assert one.connected and other.connected
    await fill(one, "CA1")
    seen = await other.get("CA1")
    assert seen is not None
    assert seen.fields["stage"] == "greeting" and seen.flags == ["returning"]
    assert seen.transcript == [f"line {i}" for i in range(2, 7)]
    assert seen.counters == {"turns": 3}
    key = f"{redis_prefix}{{CA1}}"
    assert await raw.llen(key + ":tail") == 5
    assert 0 < await raw.ttl(key) <= 600 and 0 < await raw.ttl(key + ":tail") <= 600
    # both processes count into one counter
    await asyncio.gather(*(s.incr("CA1", "turns") for s in (one, other) for _ in range(10)))
    final = await one.get("CA1")
    assert final is not None and final.counters["turns"] == 23
    await other.set_flag("CA1", "returning", on=False)
    assert (await one.get("CA1")).flags == []  # type: ignore[union-attr]
    await one.delete("CA1")
    assert await other.get("CA1") is None
    assert await raw.exists(key, key + ":tail") == 0


async def test_redis_down_mid_call_then_back_state_survives(
    started, raw: aioredis.Redis, redis_prefix: str, redis_link: TcpLink  # type: ignore[no-untyped-def]
) -> None:
    store = await started(settings(redis_link.url, redis_prefix))
    assert store.connected
    await fill(store, "CA1")
    await store.set_fields("CA-ended", {"stage": "done"})

    await redis_link.down()  # Redis goes away in the middle of the call
    await store.set_fields("CA1", {"stage": "booking"})  # the first failure falls back
    assert not store.connected
    await store.append_transcript("CA1", "said during the outage")
    assert await store.incr("CA1", "turns") == 4
    await store.set_flag("CA1", "wants_transfer")
    await store.delete("CA-ended")
    during = await store.get("CA1")
    assert during is not None
    assert during.fields["stage"] == "booking" and during.counters["turns"] == 4
    assert during.transcript[-1] == "said during the outage"
    assert store.status()["consecutiveFailures"] >= 1
    assert store.status()["sessions"]["dirty"] == 1

    await redis_link.up()
    await eventually(lambda: store.connected, "reconnected")
    key = f"{redis_prefix}{{CA1}}"
    stored = await raw.hgetall(key)
    assert stored["f:stage"] == "booking" and stored["c:turns"] == "4"
    assert stored["g:wants_transfer"] == "1" and stored["g:returning"] == "1"
    assert (await raw.lrange(key + ":tail", 0, -1))[-1] == "said during the outage"
    assert await raw.exists(f"{redis_prefix}{{CA-ended}}") == 0
    assert await raw.ttl(key) > 0
    status = store.status()
    assert status["reconnectAttempts"] >= 1 and status["consecutiveFailures"] == 0
    assert status["sessions"]["dirty"] == 0
    # and the call goes on through Redis again
    await store.incr("CA1", "turns")
    assert await raw.hget(key, "c:turns") == "5"


async def test_redis_restarted_empty_gets_the_sessions_back(
    started, raw: aioredis.Redis, redis_prefix: str, redis_link: TcpLink  # type: ignore[no-untyped-def]
) -> None:
    store = await started(settings(redis_link.url, redis_prefix))
    await fill(store, "CA1")
    key = f"{redis_prefix}{{CA1}}"
    # A restart without persistence, as the client sees it: connections drop, data is gone.
    await redis_link.down()
    await raw.delete(key, key + ":tail")
    await redis_link.up()
    await eventually(lambda: raw.exists(key), "session written back to Redis")
    assert (await raw.hgetall(key))["f:stage"] == "greeting"
    assert len(await raw.lrange(key + ":tail", 0, -1)) == 5
    session = await store.get("CA1")
    assert session is not None and session.counters == {"turns": 3}


async def test_unreachable_at_start_runs_on_memory_and_keeps_trying(
    started, redis_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = await started(settings(f"redis://127.0.0.1:{port}/15", redis_prefix))
    assert store.configured and not store.connected
    await fill(store, "CA1")
    assert (await store.get("CA1")).counters == {"turns": 3}  # type: ignore[union-attr]
    await eventually(lambda: store.reconnect_attempts >= 2, "reconnect attempts")
    status = store.status()
    assert status["consecutiveFailures"] >= 2 and "Error" in status["lastError"]


async def test_a_redis_that_hangs_costs_one_timeout_then_memory(
    started, redis_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, never answer
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        store = await started(
            settings(f"redis://127.0.0.1:{port}/15", redis_prefix, op_timeout_s=0.1)
        )
        assert not store.connected
        await store.set_fields("CA1", {"stage": "greeting"})
        assert (await store.get("CA1")).fields == {"stage": "greeting"}  # type: ignore[union-attr]
    finally:
        server.close()


async def test_memory_bound_holds_with_redis_as_the_source(
    started, redis_prefix: str  # type: ignore[no-untyped-def]
) -> None:
    store = await started(settings(REDIS_URL, redis_prefix, max_in_memory_sessions=2))
    for call in ("CA1", "CA2", "CA3"):
        await store.set_fields(call, {"n": call})
    assert len(store.memory) == 2 and store.status()["sessions"]["evicted"] == 1
    evicted = await store.get("CA1")
    assert evicted is not None and evicted.fields == {"n": "CA1"}


async def test_a_session_first_written_here_is_mirrored_whole(
    started, redis_prefix: str, redis_link: TcpLink  # type: ignore[no-untyped-def]
) -> None:
    """Process B joins a call A started; when Redis then drops, B still has all of it."""
    a = await started(settings(REDIS_URL, redis_prefix))
    b = await started(settings(redis_link.url, redis_prefix))
    await fill(a, "CA1")
    await b.incr("CA1", "turns")
    await redis_link.down()
    session = await b.get("CA1")
    assert not b.connected
    assert session is not None and session.fields["stage"] == "greeting"
    assert session.counters["turns"] == 4 and len(session.transcript) == 5


async def test_a_session_first_touched_during_an_outage_is_merged_not_replaced(
    started, raw: aioredis.Redis, redis_prefix: str, redis_link: TcpLink  # type: ignore[no-untyped-def]
) -> None:
    """B never saw A's call before Redis dropped; B's changes are added to A's state."""
    a = await started(settings(REDIS_URL, redis_prefix))
    b = await started(settings(redis_link.url, redis_prefix))
    await fill(a, "CA1")
    await redis_link.down()
    await b.set_fields("CA1", {"transfer_to": "+15005550006"})
    assert not b.connected
    await b.incr("CA1", "turns")
    await b.set_flag("CA1", "returning", on=False)
    await b.append_transcript("CA1", "from B")
    await redis_link.up()
    await eventually(lambda: b.connected, "B reconnected")
    key = f"{redis_prefix}{{CA1}}"
    stored = await raw.hgetall(key)
    assert stored["f:stage"] == "greeting" and stored["f:transfer_to"] == "+15005550006"
    assert stored["c:turns"] == "4" and "g:returning" not in stored
    assert (await raw.lrange(key + ":tail", 0, -1))[-2:] == ["line 6", "from B"]
    merged = await b.get("CA1")
    assert merged is not None and merged.counters == {"turns": 4}


@pytest.mark.parametrize("bad", ["", "x" * 129, "a{b}c"])
async def test_bad_call_ids_are_refused(started, bad: str) -> None:  # type: ignore[no-untyped-def]
    store = await started(SessionsSettings())
    with pytest.raises(ValueError):
        await store.set_fields(bad, {"a": "b"})
    with pytest.raises(ValueError):
        await store.get(bad)


async def test_fields_must_be_text(started) -> None:  # type: ignore[no-untyped-def]
    store = await started(SessionsSettings())
    with pytest.raises(TypeError):
        await store.set_fields("CA1", {"n": 1})  # type: ignore[dict-item]
