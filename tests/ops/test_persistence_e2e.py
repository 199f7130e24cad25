"""The store in live calls, end to end: records, turns, caller memory, Redis sessions, faults.

Every call is placed by `sim_call` (Twilio's side, real eSpeak speech) against
a real server in this process; SQL is a real SQLite file or a fresh schema on
the real PostgreSQL, sessions live in the real Redis (db 15). With the OpenAI
brain, the fake Realtime service records what leadline told "OpenAI", which is
the evidence of what the brain was asked to say.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from agents.brain import CallContext
from agents.memory import ASK_NAME_NOTE
from agents.nlu.names import extract_name
from agents.realtime.breaker import default_breaker
from agents.realtime.protocol import RealtimeUsage
from ops import config as config_mod
from ops.dev.fake_realtime import FakeRealtime, Script, ScriptedToolCall, serve_fake_realtime
from ops.dev.fake_realtime import Turn as ScriptTurn
from ops.dev.sim import SimOptions, SimResult, sim_call
from ops.persistence import Persistence
from store.database import Database, open_database
from store.errors import StoreUnavailable, StoreWriteError
from store.models import CallDetail, Turn, utcnow
from store.sqlite import SqliteDatabase
from tests.audio import speech_ulaw
from tests.helpers import eventually as until
from tests.ops.conftest import AUTH_TOKEN, Server, start_server
from tests.store.conftest import REDIS_URL, TcpLink, backend_url

# Real server, real sockets, real-time audio: the slow lane (`pytest -m "not e2e"` skips it).
pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "leadline"
MARIA = "+14155552671"
GREETING = "Hello."
REPLY = "Thank you."
ASK_NAME = "Your name?"


@pytest.fixture(autouse=True)
def fresh_breaker() -> Any:
    """The Realtime circuit breaker is process-wide: no test inherits another's failures."""
    default_breaker.reset()
    yield
    default_breaker.reset()


def store_env(tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    return {
        "LEADLINE_STORE_DATABASE_URL": db_url,
        "LEADLINE_STORE_JOURNAL_DIR": str(tmp_path / "journal"),
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": str(tmp_path / "messages"),
        "LEADLINE_SCRIPTED_GREETING": GREETING,
        "LEADLINE_SCRIPTED_REPLY": REPLY,
        "LEADLINE_SCRIPTED_ASK_NAME": ASK_NAME,
        "LEADLINE_BRAIN_KIND": "scripted",
        # These tests count the brain's own turns; a recognised caller turn would be one more.
        "LEADLINE_SCRIPTED_STT": "off",
        **extra,
    }


@asynccontextmanager
async def running(env: Mapping[str, str]) -> AsyncIterator[Server]:
    server, runner = await start_server(env)
    try:
        yield server
    finally:
        await runner.cleanup()


def persistence(server: Server) -> Persistence:
    return server.runtime.persistence


def database(server: Server) -> Database:
    db = persistence(server).db
    assert db is not None
    return db


async def call(server: Server, text: str, *, from_number: str = MARIA, **options: Any
               ) -> SimResult:
    result = await sim_call(SimOptions(
        url=server.url, auth_token=AUTH_TOKEN, from_number=from_number, audio=speech_ulaw(text),
        hangup_after_s=20, quiet_s=0.3, **options,
    ))
    assert result.responses >= 2, "the call did not get a greeting and a reply"
    return result


async def stored_call(server: Server, call_sid: str, turns: int) -> CallDetail:
    """The call once it is ended in SQL with at least `turns` turns."""
    db = database(server)

    async def done() -> CallDetail | None:
        await persistence(server).writer.flush()  # type: ignore[union-attr]
        detail = await db.get_call(call_sid)
        ok = detail is not None and detail.call.ended_at is not None
        return detail if ok and len(detail.turns) >= turns else None  # type: ignore[union-attr]

    return await until(done, f"call {call_sid} in SQL")


async def health(server: Server) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
        assert resp.status == 200
        return await resp.json()


def instructions_by_connection(fake: FakeRealtime) -> list[str]:
    """The session instructions leadline sent, one per Realtime connection, in order."""
    seen: dict[int, str] = {}
    for event in fake.received_of("session.update"):
        seen.setdefault(event["connection"], event["session"]["instructions"])
    return [seen[n] for n in sorted(seen)]


# --- caller memory with the OpenAI Realtime brain, on both SQL backends ----------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_second_call_is_greeted_by_the_name_the_first_call_heard(
    backend: str, tmp_path: Path
) -> None:
    fake_runner = await serve_fake_realtime(0, Script(
        greeting="Hello.",
        turns=(ScriptTurn(transcript="My name is Maria", reply="Hi, Maria."),),
        speed=20,
    ))
    try:
        async with backend_url(backend, tmp_path) as db_url, running(store_env(
            tmp_path, db_url,
            LEADLINE_BRAIN_KIND="openai",
            LEADLINE_OPENAI_API_KEY="sk-test",
            LEADLINE_OPENAI_BASE_URL=fake_runner.websocket_base_url,
        )) as server:
            fake = fake_runner.fake
            first = await call(server, "Hi there.")
            detail = await stored_call(server, first.call_sid, turns=3)
            db = database(server)
            caller = await until(lambda: _named(db, MARIA), "the name in SQL")
            assert caller.name == "Maria" and caller.call_count == 1

            # Ops read the transcript with the CLI, pointed at the server's config file,
            # while the same caller calls again.
            config = tmp_path / "leadline.toml"
            config.write_text(f'[store]\ndatabase_url = "{db_url}"\n')
            shown, second = await asyncio.gather(
                asyncio.to_thread(
                    subprocess.run, [str(BIN), "calls", "show", first.call_sid, "--json",
                                     "--config", str(config)],
                    capture_output=True, timeout=30, check=False, env={"PATH": "/usr/bin:/bin"},
                ),
                call(server, "Hi there."),
            )
            first_instr, second_instr = instructions_by_connection(fake)
            # The new caller was asked for their name; the returning one is greeted by it.
            assert ASK_NAME_NOTE in first_instr and "Maria" not in first_instr
            assert "Maria" in second_instr and "welcome them back" in second_instr
            assert ASK_NAME_NOTE not in second_instr

            # The first call's record: who, which brain, how it ended, tokens, every turn.
            call1 = detail.call
            assert (call1.direction, call1.from_number) == ("inbound", MARIA)
            assert call1.brain == "openai" and call1.status == "completed"
            assert call1.outcome == "caller hung up"
            assert call1.input_tokens > 0 and call1.output_tokens > 0
            said = [(t.role, t.text) for t in detail.turns]
            assert said == [("agent", "Hello."), ("caller", "My name is Maria"),
                            ("agent", "Hi, Maria.")]
            assert [t.seq for t in detail.turns] == [0, 1, 2]
            await stored_call(server, second.call_sid, turns=3)
            caller = await db.get_caller(MARIA)
            assert caller is not None and caller.call_count == 2

            status = (await health(server))["store"]
            assert status["lookups"]["new"] == 1 and status["lookups"]["returning"] == 1
            assert status["namesCaptured"] == 1
            assert status["turns"]["recorded"] == 6
            assert shown.returncode == 0, shown.stderr.decode()
            printed = json.loads(shown.stdout)
            assert printed["call"]["call_sid"] == first.call_sid
            assert [t["text"] for t in printed["turns"]] == [text for _, text in said]
    finally:
        await fake_runner.cleanup()


async def _named(db: Database, phone: str) -> Any:
    caller = await db.get_caller(phone)
    return caller if caller is not None and caller.name else None


async def test_capture_caller_name_tool_stores_the_name(tmp_path: Path) -> None:
    transcript = "Yes, that is right."
    assert extract_name(transcript, after_name_question=True) is None  # only the tool names
    fake_runner = await serve_fake_realtime(0, Script(
        greeting="Hello, who am I speaking with?",
        turns=(ScriptTurn(transcript=transcript, reply="Got it.",
                    tool_calls=(ScriptedToolCall("capture_caller_name",
                                                 {"name": "María O'Neil; DROP TABLE callers"}),),
                    after_tool_reply="Thanks, María."),),
        speed=20,
    ))
    try:
        async with running(store_env(
            tmp_path, f"sqlite:///{tmp_path}/store.db",
            LEADLINE_BRAIN_KIND="openai",
            LEADLINE_OPENAI_API_KEY="sk-test",
            LEADLINE_OPENAI_BASE_URL=fake_runner.websocket_base_url,
        )) as server:
            result = await call(server, "Hi there.")
            caller = await until(lambda: _named(database(server), MARIA), "the name in SQL")
            # Stored exactly as given, quotes and SQL-looking text included.
            assert caller.name == "María O'Neil; DROP TABLE callers"
            outputs = fake_runner.fake.received_of("conversation.item.create")
            assert any("Saved the caller's name" in json.dumps(e) for e in outputs)
            await stored_call(server, result.call_sid, turns=3)
    finally:
        await fake_runner.cleanup()


# --- caller memory with the scripted brain ----------------------------------------------


async def test_scripted_brain_welcomes_back_asks_new_callers_and_greets_unknowns_plainly(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path}/store.db"
    seed = await open_database(db_url)
    try:
        await seed.set_caller_name(MARIA, "Maria")
    finally:
        await seed.close()
    async with running(store_env(tmp_path, db_url)) as server:
        # Three callers at once: returning (named), new, and a number with no memory.
        returning, new, anonymous = await asyncio.gather(
            call(server, "Hi there."),
            call(server, "Hi there.", from_number="+12125550123"),
            call(server, "Hi there.", from_number="anonymous"),
        )
        greetings = {}
        for result in (returning, new, anonymous):
            detail = await stored_call(server, result.call_sid, turns=2)
            assert detail.call.brain == "scripted"
            greetings[result.call_sid] = detail.turns[0].text
        assert greetings[returning.call_sid] == f"Welcome back, Maria. {GREETING}"
        assert greetings[new.call_sid] == f"{GREETING} {ASK_NAME}"
        assert greetings[anonymous.call_sid] == GREETING
        db = database(server)
        caller = await db.get_caller("+12125550123")
        assert caller is not None and caller.name is None and caller.call_count == 1
        caller = await db.get_caller(MARIA)
        assert caller is not None and caller.name == "Maria" and caller.call_count == 1
        lookups = (await health(server))["store"]["lookups"]
        assert lookups == {"returning": 1, "new": 1, "timeouts": 0, "errors": 0,
                           "invalidNumbers": 1}


# --- live sessions in Redis --------------------------------------------------------------



@pytest.fixture
async def redis_link() -> AsyncIterator[TcpLink]:
    """A TCP link to the real Redis that the test can cut and restore."""
    kwargs = aioredis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs
    link = TcpLink(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)))
    await link.up()
    try:
        yield link
    finally:
        if link._server is not None:
            await link.down()


async def _session(prefix: str, call_sid: str) -> tuple[dict[str, str], list[str]]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        key = f"{prefix}{{{call_sid}}}"
        return await client.hgetall(key), await client.lrange(key + ":tail", 0, -1)
    finally:
        await client.aclose()


async def test_session_lives_in_redis_during_the_call_and_is_removed_after(
    tmp_path: Path, redis_prefix: str
) -> None:
    sid = "CA" + uuid.uuid4().hex
    async with running(store_env(
        tmp_path, f"sqlite:///{tmp_path}/store.db",
        LEADLINE_SESSIONS_REDIS_URL=REDIS_URL, LEADLINE_SESSIONS_KEY_PREFIX=redis_prefix,
    )) as server:
        assert (await health(server))["redis"]["connected"] is True
        placed = asyncio.create_task(call(server, "Hi there.",
                                          call_sid=sid))

        async def live() -> Any:
            fields, tail = await _session(redis_prefix, sid)
            return (fields, tail) if fields and tail else None

        fields, tail = await until(live, "the session in Redis")
        assert fields["f:from"] == MARIA and fields["f:brain"] == "scripted"
        assert fields["f:direction"] == "inbound" and fields["g:new_caller"] == "1"
        assert tail[0] == f"agent: {GREETING} {ASK_NAME}"
        during = await health(server)
        assert during["redis"]["sessions"]["active"] == 1
        assert during["redis"]["sessions"]["memory"] == 1
        await placed

        async def gone() -> bool:
            return await _session(redis_prefix, sid) == ({}, [])

        await until(gone, "the session to be deleted at the end of the call")
        after = await health(server)
        assert after["redis"]["connected"] is True
        assert after["redis"]["consecutiveFailures"] == 0
        assert after["redis"]["sessions"]["memory"] == 0


async def test_redis_cut_mid_call_the_call_goes_on_from_memory_and_resyncs(
    tmp_path: Path, redis_prefix: str, redis_link: TcpLink
) -> None:
    sid = "CA" + uuid.uuid4().hex
    async with running(store_env(
        tmp_path, f"sqlite:///{tmp_path}/store.db",
        LEADLINE_SESSIONS_REDIS_URL=redis_link.url, LEADLINE_SESSIONS_KEY_PREFIX=redis_prefix,
        LEADLINE_SESSIONS_HEALTH_INTERVAL_S="0.1", LEADLINE_SESSIONS_OP_TIMEOUT_S="0.3",
        LEADLINE_SESSIONS_RECONNECT_MAX_BACKOFF_S="0.4",
    )) as server:
        placed = asyncio.create_task(call(server, "Hi there.",
                                          call_sid=sid))

        async def greeted() -> Any:
            return (await _session(redis_prefix, sid))[1]

        await until(greeted, "the greeting in the Redis session")
        await redis_link.down()  # before the caller speaks: the reply happens without Redis

        async def down() -> bool:
            return (await health(server))["redis"]["connected"] is False

        await until(down, "/health to show Redis disconnected")
        result = await placed
        assert not result.closed_by_server
        detail = await stored_call(server, sid, turns=2)
        assert [t.text for t in detail.turns] == [f"{GREETING} {ASK_NAME}", REPLY]
        status = await health(server)
        assert status["redis"]["reconnectAttempts"] >= 1
        assert status["redis"]["consecutiveFailures"] >= 1
        assert status["redis"]["connected"] is False  # the whole call ran on memory

        await redis_link.up()

        async def back() -> bool:
            return (await health(server))["redis"]["connected"] is True

        await until(back, "Redis to reconnect")
        # Resynced: the session ended while Redis was away is gone from Redis too.
        assert await _session(redis_prefix, sid) == ({}, [])


# --- store faults --------------------------------------------------------------------------


async def test_postgres_unreachable_at_start_stops_the_server_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://leadline:s3cret@127.0.0.1:{port}/calls"
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        await start_server(store_env(tmp_path, url))
    logged = [r.getMessage() for r in caplog.records if r.name == "leadline.persistence"]
    assert any("will not start" in m and f"127.0.0.1:{port}" in m for m in logged)
    assert not any("s3cret" in m for m in logged)
    assert not (tmp_path / "journal").exists()  # nothing went on without its store


async def _fill(db: SqliteDatabase) -> None:
    """Make the SQLite file full: no page may be added, and the free space is used up."""
    pages = (await db._writer.execute_fetchall("PRAGMA page_count"))[0][0]
    await db._writer.execute(f"PRAGMA max_page_count = {pages}")
    seq = 0
    for size in (3000, 300, 30, 1):
        while True:
            seq += 1
            try:
                await db.add_turns([Turn("CA-filler", seq, "agent", "x" * size, utcnow())])
            except StoreWriteError:
                break


async def test_sqlite_disk_full_is_counted_and_logged_the_call_goes_on_nothing_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leadline.persistence")
    async with running(store_env(tmp_path, f"sqlite:///{tmp_path}/store.db",
                                 LEADLINE_STORE_TURN_FLUSH_INTERVAL_S="0.05")) as server:
        db = database(server)
        assert isinstance(db, SqliteDatabase)
        await _fill(db)
        errors_before = db.stats.write_errors
        result = await call(server, "Hi there.")
        assert not result.closed_by_server and result.responses >= 2
        status = (await health(server))["store"]
        assert status["turns"]["flushFailures"] >= 1 and status["turns"]["pending"] >= 2
        assert status["writeErrors"] > errors_before
        assert "full" in status["turns"]["lastError"]
        assert any("full" in r.getMessage() for r in caplog.records
                   if r.name == "leadline.persistence")
        # Space comes back: the turns still reach SQL (they waited in memory and journal).
        await db._writer.execute("PRAGMA max_page_count = 1073741823")
        detail = await stored_call(server, result.call_sid, turns=2)
        assert [t.text for t in detail.turns] == [f"{GREETING} {ASK_NAME}", REPLY]


# --- the observer on its own: a stand-in call, the real store ---------------------------


class StubBrain:
    def __init__(self, kind: str, input_tokens: int = 0, output_tokens: int = 0) -> None:
        self.kind = kind
        if input_tokens or output_tokens:
            self.usage = RealtimeUsage(input_tokens=input_tokens, output_tokens=output_tokens)


class StubCall:
    """What the observer reads of a `telephony.call.Call`, and its caller_named loop."""

    def __init__(self, observer: Persistence, sid: str, from_number: str = MARIA) -> None:
        self.context = CallContext(call_sid=sid, from_number=from_number, to_number="+15005550006")
        self.observer = observer
        self.brain: Any = StubBrain("scripted")
        self.fell_back = False
        self.recorder = None
        self.ended_at: float | None = None
        self.end_reason = ""

    @property
    def call_sid(self) -> str:
        return self.context.call_sid

    def caller_named(self, name: str) -> None:
        self.context.caller_name = name
        self.observer.caller_named(self, name)  # type: ignore[arg-type]

    def end(self, reason: str) -> None:
        self.ended_at = time.monotonic()
        self.end_reason = reason
        self.observer.call_ended(self)  # type: ignore[arg-type]


@asynccontextmanager
async def observer(tmp_path: Path, **store: Any) -> AsyncIterator[Persistence]:
    cfg = config_mod.build({"store": {"database_url": f"sqlite:///{tmp_path}/obs.db",
                                      "journal_dir": str(tmp_path / "journal"), **store}})
    p = Persistence(cfg)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_a_lone_name_counts_only_right_after_the_agent_asked(tmp_path: Path) -> None:
    async with observer(tmp_path) as p:
        asked, not_asked = StubCall(p, "CA-asked"), StubCall(p, "CA-not", "+12125550123")
        for c in (asked, not_asked):
            p.call_started(c)  # type: ignore[arg-type]
            await p.before_greeting(c)  # type: ignore[arg-type]
            assert c.context.caller_name == ""  # known number, no name yet: ask
        p.transcript(asked, "agent", "Hello. Who am I speaking with?")  # type: ignore[arg-type]
        p.transcript(asked, "caller", "Maria Lopez")  # type: ignore[arg-type]
        p.transcript(not_asked, "agent", "Hello. How can I help?")  # type: ignore[arg-type]
        p.transcript(not_asked, "caller", "Maria Lopez")  # type: ignore[arg-type]
        p.transcript(not_asked, "caller", "I'm fine, thanks")  # type: ignore[arg-type]
        assert asked.context.caller_name == "Maria Lopez"
        assert not_asked.context.caller_name == ""
        asked.end("caller hung up")
        not_asked.end("caller hung up")
        db = p.db
        assert db is not None
        await until(lambda: _named(db, MARIA), "the name in SQL")
        assert (await db.get_caller("+12125550123")).name is None  # type: ignore[union-attr]
        await p.writer.flush()  # type: ignore[union-attr]
        detail = await db.get_call("CA-not")
        assert detail is not None
        assert [t.text for t in detail.turns] == [
            "Hello. How can I help?", "Maria Lopez", "I'm fine, thanks"]


async def test_a_fallback_call_records_both_brains_and_their_tokens(tmp_path: Path) -> None:
    async with observer(tmp_path) as p:
        c = StubCall(p, "CA-fb")
        c.brain = StubBrain("openai", input_tokens=120, output_tokens=340)
        p.call_started(c)  # type: ignore[arg-type]
        p.transcript(c, "agent", "Hello.")  # type: ignore[arg-type]
        c.brain, c.fell_back = StubBrain("scripted"), True
        p.transcript(c, "agent", "Sorry, our assistant is having trouble.")  # type: ignore[arg-type]
        c.end("caller hung up")
        db = p.db
        assert db is not None

        async def ended() -> Any:
            detail = await db.get_call("CA-fb")
            return detail if detail is not None and detail.call.ended_at else None

        call_ = (await until(ended, "the end of the call")).call
        assert call_.brain == "openai+scripted"
        assert (call_.input_tokens, call_.output_tokens) == (120, 340)
        assert [e.kind for e in await db.list_audit(call_sid="CA-fb")] == ["brain_fallback"]


async def test_retention_purges_old_turns_and_recordings_at_start(tmp_path: Path) -> None:
    recording = tmp_path / "old.wav"
    recording.write_bytes(b"RIFF")
    db = await open_database(f"sqlite:///{tmp_path}/obs.db")
    try:
        long_ago = utcnow() - timedelta(days=40)
        await db.start_call("CA-old", direction="inbound", from_number=MARIA,
                            to_number="+15005550006", started_at=long_ago)
        await db.add_turns([Turn("CA-old", 0, "agent", "Hello.", long_ago)])
        await db.end_call("CA-old", recording_path=str(recording))
    finally:
        await db.close()
    async with observer(tmp_path, retention_days=30) as p:
        async def purged() -> bool:
            return p.status()["store"]["retention"]["purgedTurns"] == 1

        await until(purged, "the retention purge at start")
        assert not recording.exists()
        assert p.status()["store"]["retention"]["removedRecordings"] == 1
        detail = await p.db.get_call("CA-old")  # type: ignore[union-attr]
        assert detail is not None and detail.turns == []
