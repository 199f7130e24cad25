"""Faults under load, and what they cost: `benchmarks/chaos.sh --calls 100`.

The harness starts its own Redis and PostgreSQL (`services.py`, never the machine's),
the fake Twilio (Calls with callees over real Media Streams, and Messages) in this
process, the fake OpenAI Realtime server and `leadline serve` as child processes. With
live calls up (`load.py`), an SMS campaign enrolled batch by batch and dial jobs pushed
into the BullMQ queue all along, it then, one after the other:

1. SIGKILLs Redis and starts it again (sessions fall back to memory, the dialer waits);
2. restarts PostgreSQL (`pg_ctl restart -m fast`);
3. SIGKILLs the postmaster and starts PostgreSQL again;
4. SIGKILLs the fake realtime server (calls must go on with the keyless brain), then
   starts it again;
5. SIGKILLs `leadline serve` and starts it again on the same database and journal.

Then it lets the queue and the outbox drain, hangs up, and prints one JSON object:
calls dropped per fault (only the SIGKILL of the server may drop any, and only the
calls it held), committed turns acknowledged by the servers vs rows in SQL (and calls
whose turn numbers have holes), SMS received by Twilio twice or never, dial jobs
dialed twice or never / not finished, and the seconds until each dependency is used
again after it is back. `ok` is true only when nothing was lost or doubled.

Compliance uses the real clock, so leads and callees get numbers in a time zone where
it is daytime now (`daytime_numbers`): the same run gives the same answer at any hour.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.chaos.fakes import ACCOUNT_SID, AUTH_TOKEN, Twilio
from benchmarks.chaos.load import CallLoad, Prober
from benchmarks.chaos.services import PostgresProc, Proc, RedisProc, free_port, wait_port

BIN = Path(sys.executable).parent / "leadline"
# The caller number of the probe calls (`load.Prober`).
PROBE_NUMBER = "+15005550009"
QUEUE = "leadline-calls"
CAMPAIGN = "chaos"
# Where a number of each zone starts; the last digits are varied per lead.
ZONE_BASES = ("+819012340000", "+8613812340000", "+6591230000", "+919876540000",
              "+971501230000", "+27821230000", "+4915123450000", "+33612340000",
              "+5511987650000", "+12125550000", "+525512340000", "+14155550000",
              "+18085550000")


def daytime_numbers(count: int, *, margin: timedelta = timedelta(minutes=45)) -> list[str]:
    """`count` valid numbers of one zone inside every calling window now and for `margin`."""
    import phonenumbers

    from agents.compliance.engine import CompliancePolicy, inside_windows
    from agents.compliance.rules import number_facts

    policy = CompliancePolicy()
    now = datetime.now(UTC)
    for base in ZONE_BASES:
        facts = number_facts(base[:-4] + "1234")
        if not facts.zones or facts.state:
            continue
        if not all(inside_windows(at, facts.zones, [], policy)
                   for at in (now, now + margin / 2, now + margin)):
            continue
        out: list[str] = []
        for i in range(1, 10_000):
            candidate = base[:-4] + f"{i:04d}"
            parsed = phonenumbers.parse(candidate)
            if phonenumbers.is_valid_number(parsed) and \
                    number_facts(candidate).zones == facts.zones:
                out.append(candidate)
                if len(out) == count:
                    return out
    raise RuntimeError("no zone is inside its calling window now (cannot happen)")


PHASES = {"fault_redis": "redis_kill9", "fault_pg_restart": "postgres_restart",
          "fault_pg_kill9": "postgres_kill9", "fault_realtime": "realtime_kill9",
          "fault_serve": "serve_kill9"}


class Harness:
    def __init__(self, *, calls: int, sms: int, jobs: int, root: Path, ramp_s: float,
                 down_s: float = 3.0, settle_s: float = 4.0, log: Any = None) -> None:
        self.n_calls, self.n_sms, self.n_jobs = calls, sms, jobs
        self.root = root
        self.ramp_s = ramp_s
        self.down_s = down_s
        self.settle_s = settle_s
        self.log = log or (lambda msg: print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}",
                                             file=sys.stderr, flush=True))
        self.redis = RedisProc(root)
        self.pg = PostgresProc(root)
        self.twilio = Twilio()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rt_port = free_port()
        self.realtime = Proc("fake-realtime", [str(BIN), "dev", "fake-realtime", "--port",
                                               str(self.rt_port), "--script",
                                               str(root / "realtime.toml")],
                             root / "fake-realtime.log", env=self._child_env())
        self.serve = Proc("serve", [str(BIN), "serve", "--config", str(root / "leadline.toml")],
                          root / "serve.log", env=self._child_env(), cwd=root)
        self.load: CallLoad | None = None
        self.prober: Prober | None = None
        self.queue: Any = None
        self.jobs: dict[str, str] = {}  # job id -> phone
        self.job_push_errors = 0
        self.enrolled: list[str] = []
        self.recovery: dict[str, Any] = {}
        self.notes: list[str] = []
        self.turns_acked: list[int] = []
        self.calls_at_kill = 0
        self.timeline: list[tuple[float, str]] = []
        self._pusher: asyncio.Task[None] | None = None
        self._pg_pool: Any = None
        self._http: aiohttp.ClientSession | None = None

    # -- setup ------------------------------------------------------------------------

    @staticmethod
    def _child_env() -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LEADLINE_", "TWILIO_", "OPENAI_"))}
        return env

    def _write_files(self, leads: list[str]) -> None:
        (self.root / "realtime.toml").write_text(
            'greeting = "Hello, thanks for calling Acme."\n'
            'default_reply = "I see. Could you tell me a little more?"\n'
            'default_transcript = "I would like to book an appointment."\n')
        (self.root / "leads.csv").write_text(
            "phone,first_name\n" + "".join(f"{p},Lead{i}\n" for i, p in enumerate(leads)))
        (self.root / "campaign.toml").write_text(
            f'name = "{CAMPAIGN}"\n\n[[touches]]\nchannel = "sms"\ndelay = "0d"\n'
            'template = "Hi {first_name}, it is {business_name}. Book here: {booking_url}"\n')
        (self.root / "leadline.toml").write_text(f"""
[server]
host = "127.0.0.1"
port = {self.port}
max_calls = 5000
reload_poll_s = 0

[log]
level = "INFO"

[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
public_url = "{self.url}"
api_base_url = "{self.twilio.base_url}"

[brain]
kind = "openai"

[openai]
api_key = "sk-chaos"
base_url = "ws://127.0.0.1:{self.rt_port}/v1"
breaker_cooldown_s = 5.0

[sessions]
redis_url = "{self.redis.url}"
max_in_memory_sessions = 5000
op_timeout_s = 0.3
health_interval_s = 1.0
reconnect_max_backoff_s = 2.0

[store]
database_url = "{self.pg.url}"
journal_dir = "{self.root}/journal"

[scripted]
messages_directory = "{self.root}/messages"

[sms]
from_number = "+14155550123"
business_name = "Acme"
booking_url = "https://book.example.com/acme"
max_mps = 4

[sms_outbox]
poll_s = 0.3
lease_s = 20
send_timeout_s = 4
backoff_base_s = 1
backoff_cap_s = 4

[campaigns]
tick_s = 0.5
lease_s = 10

[dialer]
enabled = true
redis_url = "{self.redis.url}"
queue = "{QUEUE}"
caller_id = "+14155550100"
concurrency = 20
max_call_s = 30
ring_timeout_s = 10
lock_duration_ms = 4000
stalled_interval_ms = 2000
poll_s = 0.5
""")

    async def _cli(self, *args: str, limit_s: float = 120) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(BIN), *args, "--config", str(self.root / "leadline.toml"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self._child_env(), cwd=self.root)
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
        text = out.decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"leadline {' '.join(args)} exited {proc.returncode}: {text[-800:]}")
        return text

    async def setup(self) -> None:
        numbers = daytime_numbers(self.n_sms + self.n_jobs + 1)
        self.leads, self.dial_phones = numbers[:self.n_sms], numbers[self.n_sms:-1]
        # One more job, pushed the moment Redis is back: when does the dialer consume it?
        self.probe_phone = numbers[-1]
        self.pg.init()
        await self.redis.start()
        await self.pg.start()
        await self.twilio.start()
        self._write_files(self.leads)
        self.realtime.start()
        await wait_port(self.rt_port, "fake realtime", 60)
        await self._cli("db", "migrate")
        await self._cli("leads", "import", str(self.root / "leads.csv"), "--json")
        await self._cli("campaigns", "load", str(self.root / "campaign.toml"), "--json")
        import asyncpg
        from bullmq import Queue

        self._pg_pool = await asyncpg.create_pool(self.pg.url, min_size=0, max_size=2)
        self.queue = Queue(QUEUE, {"connection": self.redis.url})
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self.log(f"services up: redis {self.redis.port}, postgres {self.pg.port}, "
                 f"realtime {self.rt_port}, twilio {self.twilio.base_url}; "
                 f"numbers in {numbers[0][:6]}…")

    # -- probes -----------------------------------------------------------------------

    async def health(self) -> dict[str, Any] | None:
        assert self._http is not None
        try:
            async with self._http.get(self.url + "/health") as resp:
                if resp.status == 200:
                    return await resp.json()  # type: ignore[no-any-return]
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass
        return None

    async def until(self, check: Any, what: str, limit_s: float) -> float:
        """Seconds until `check()` (sync or async) is truthy; RuntimeError naming `what`."""
        t0 = time.monotonic()
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return time.monotonic() - t0
            if time.monotonic() - t0 > limit_s:
                raise RuntimeError(f"never happened within {limit_s} s: {what}")
            await asyncio.sleep(0.1)

    async def sql(self, query: str, *args: Any) -> list[Any]:
        for _ in range(100):
            try:
                async with self._pg_pool.acquire() as conn:
                    return list(await conn.fetch(query, *args))
            except Exception:  # the harness's own pool rides out the restarts too
                await asyncio.sleep(0.2)
        raise RuntimeError(f"harness query failed for 20 s: {query}")

    async def start_serve(self) -> float:
        t0 = time.monotonic()
        self.serve.start()

        async def healthy() -> bool:
            if not self.serve.running():
                raise RuntimeError(f"leadline serve exited: {self.serve.tail()}")
            return await self.health() is not None

        await self.until(healthy, "leadline serve healthy", 90)
        return time.monotonic() - t0

    async def _push(self, phone: str) -> bool:
        data = {"campaignId": "chaos", "step": 1,
                "contact": {"firstName": "Ada", "lastName": "Lovelace", "phone": phone,
                            "practiceName": "Acme"}}
        try:
            job = await asyncio.wait_for(self.queue.add(
                "call", data, {"attempts": 3, "backoff": {"type": "fixed", "delay": 1000}}), 3)
        except Exception:  # Redis is down: the producer retries, as a sales tool would
            self.job_push_errors += 1
            return False
        self.jobs[str(job.id)] = phone
        return True

    async def _push_jobs(self, every_s: float) -> None:
        i = 0
        while i < len(self.dial_phones):
            if not await self._push(self.dial_phones[i]):
                await asyncio.sleep(0.5)
                continue
            i += 1
            await asyncio.sleep(every_s)

    async def enroll(self, phones: list[str]) -> None:
        if not phones:
            return
        path = self.root / f"enroll-{len(self.enrolled)}.txt"
        path.write_text("".join(p + "\n" for p in phones))
        await self._cli("campaigns", "enroll", CAMPAIGN, "--file", str(path), "--json")
        self.enrolled.extend(phones)

    def _received_sms(self) -> Counter[str]:
        return Counter(m.to for m in self.twilio.messages.messages)

    async def _turn_rows(self) -> int:
        return int((await self.sql("SELECT count(*) FROM turns"))[0][0])

    # -- faults -----------------------------------------------------------------------

    async def _store_used_again(self, what: str) -> None:
        """After PostgreSQL is back: seconds until the server commits a new turn."""
        before = await self._turn_rows()
        s = await self.until(lambda: self._turn_rows_grew(before), f"a turn committed after {what}",
                             60)
        self.recovery[what] = {"store_s": round(s, 2)}

    async def _turn_rows_grew(self, before: int) -> bool:
        return await self._turn_rows() > before

    async def fault_redis(self) -> None:
        self.log("fault: kill -9 redis")
        self.redis.kill9()

        async def sessions_connected() -> bool:
            h = await self.health()
            return bool(h and h["redis"].get("connected"))

        t0 = time.monotonic()
        noticed = False
        while time.monotonic() - t0 < self.down_s:
            noticed = noticed or not await sessions_connected()
            await asyncio.sleep(0.2)
        if not noticed:
            self.notes.append("the server never reported Redis down during the outage")
        await self.redis.start()
        back = time.monotonic()
        pushed = asyncio.create_task(self._push_until_accepted(self.probe_phone))
        sessions_s = await self.until(sessions_connected, "sessions reconnected to Redis", 60)

        def probe_dialed() -> bool:
            return any(c.to == self.probe_phone for c in self.twilio.calls.calls.values())

        await self.until(probe_dialed, "a job pushed after Redis came back dialed", 90)
        dial_s = time.monotonic() - back
        await pushed
        self.recovery["redis_kill9"] = {"sessions_s": round(sessions_s, 2),
                                        "dialer_s": round(dial_s, 2)}

    async def _push_until_accepted(self, phone: str) -> None:
        for _ in range(600):
            if await self._push(phone):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("Redis took no job for 60 s after its restart")

    async def fault_pg_restart(self) -> None:
        self.log("fault: pg_ctl restart -m fast")
        await self.pg.restart_fast()
        await self._store_used_again("postgres_restart")

    async def fault_pg_kill9(self) -> None:
        self.log("fault: kill -9 postmaster")
        await self.pg.kill9_postmaster()
        await asyncio.sleep(self.down_s)
        await self.pg.start()
        await self._store_used_again("postgres_kill9")

    async def fault_realtime(self) -> None:
        assert self.load is not None and self.prober is not None
        self.log("fault: kill -9 fake realtime")
        before = self.load.received()
        self.realtime.kill9()
        killed = time.monotonic()
        # Every call must keep getting answers (the keyless brain), none may drop.
        await asyncio.sleep(max(8.0, 2 * self.settle_s))
        after = self.load.received()
        silent = [i for i, n in after.items() if i in before and n <= before[i]]
        self.recovery["realtime_kill9"] = {
            "calls_live": len(after), "calls_without_agent_audio_after_kill": len(silent)}
        self.realtime.start()
        await wait_port(self.rt_port, "fake realtime", 60)
        back = datetime.now(UTC)
        # A new probe call that starts on the realtime brain, by the server's own record
        # (its start time), not by when the loaded harness hears of it.
        first = await self.until_row(
            "SELECT min(started_at) FROM calls WHERE from_number = $1 AND started_at >= $2"
            " AND brain LIKE 'openai%'", back, "a new call on the realtime brain after its "
            "restart")
        self.recovery["realtime_kill9"]["used_again_s"] = round(
            (first - back).total_seconds(), 2)
        del killed

    async def until_row(self, query: str, since: datetime, what: str,
                        limit_s: float = 120) -> datetime:
        """The timestamp `query` (probe number, since) finds once it finds one."""
        found: list[datetime] = []

        async def check() -> bool:
            rows = await self.sql(query, PROBE_NUMBER, since)
            if rows and rows[0][0] is not None:
                found.append(rows[0][0])
            return bool(found)

        await self.until(check, what, limit_s)
        return found[0]

    async def fault_serve(self) -> None:
        assert self.load is not None and self.prober is not None
        self.log("fault: kill -9 leadline serve")
        h = await self.health()
        assert h is not None
        self.calls_at_kill = len(self.load.live())
        self.serve.kill9()
        self.turns_acked.append(int(h["store"]["turns"]["recorded"]))
        await asyncio.sleep(1.0)
        self.load.note_drops()
        self.set_phase("after_serve_restart")
        started = datetime.now(UTC)
        up_s = await self.start_serve()
        first = await self.until_row(
            "SELECT min(started_at) FROM calls WHERE from_number = $1 AND started_at >= $2",
            started, "a call taken by the restarted server")
        self.recovery["serve_kill9"] = {"healthy_s": round(up_s, 2), "first_call_s": round(
            (first - started).total_seconds(), 2)}

    # -- the run ----------------------------------------------------------------------

    def set_phase(self, name: str) -> None:
        assert self.load is not None and self.prober is not None
        self.load.phase = self.prober.phase = name
        self.timeline.append((time.time(), name))

    def phase_at(self, wall: float) -> str:
        name = "ramp"
        for at, phase in self.timeline:
            if at > wall:
                break
            name = phase
        return name

    async def run(self) -> dict[str, Any]:
        await self.setup()
        await self.start_serve()
        self.log(f"leadline serve up on {self.url}; ramping {self.n_calls} calls")
        self.load = CallLoad(self.url, self.n_calls, AUTH_TOKEN, self.ramp_s)
        await self.load.start()
        self.prober = Prober(self.url, AUTH_TOKEN, from_number=PROBE_NUMBER)
        self.prober.start()
        faults = [self.fault_redis, self.fault_pg_restart, self.fault_pg_kill9,
                  self.fault_realtime, self.fault_serve]
        batches = [self.leads[i::len(faults)] for i in range(len(faults))]
        # Jobs spread over the faults (about one fault every 20 s).
        self._pusher = asyncio.create_task(self._push_jobs(
            max(0.2, 20.0 * len(faults) / max(1, self.n_jobs))))
        await self.load.ramped(self.ramp_s + 30)
        await asyncio.sleep(self.settle_s)
        for fault, batch in zip(faults, batches, strict=True):
            await self.enroll(batch)
            await asyncio.sleep(1.5)  # the scheduler has queued them, the sender is sending
            self.set_phase(PHASES[fault.__name__])
            await fault()
            self.load.note_drops()
            self.set_phase("between")
            await asyncio.sleep(self.settle_s)
        return await self.finish()

    async def finish(self) -> dict[str, Any]:
        assert self.load is not None and self.prober is not None
        self.log("draining: jobs, outbox, calls")
        if self._pusher is not None:
            await asyncio.wait({self._pusher}, timeout=60)
            self._pusher.cancel()
        await self.prober.stop()
        self.set_phase("hangup")
        self.load.note_drops()
        await self.load.hang_up()
        from bullmq import Job

        async def jobs_done() -> bool:
            for jid in self.jobs:
                job = await Job.fromId(self.queue, jid)
                if job is None or not job.finishedOn:
                    return False
            return True

        with contextlib.suppress(RuntimeError):
            await self.until(jobs_done, "every dial job finished", 150)
        received = self._received_sms()
        with contextlib.suppress(RuntimeError):
            await self.until(lambda: all(received_ok(self._received_sms(), p)
                                         for p in self.enrolled), "every SMS sent", 60)

        async def server_idle() -> bool:
            h = await self.health()
            return bool(h and h["store"]["activeCalls"] == 0
                        and h["store"]["turns"]["pending"] == 0)

        with contextlib.suppress(RuntimeError):
            await self.until(server_idle, "server idle, every turn flushed", 60)
        await asyncio.sleep(1.0)
        h = await self.health() or {}
        turns = h.get("store", {}).get("turns", {})
        self.turns_acked.append(int(turns.get("recorded", 0)))
        return await self.report(h, received)

    async def report(self, health: dict[str, Any], _received: Counter[str]) -> dict[str, Any]:
        assert self.load is not None and self.prober is not None
        from bullmq import Job

        drops = Counter(d.phase for d in self.load.drops)
        stored = await self._turn_rows()
        holes = await self.sql(
            "SELECT call_sid, count(*), max(seq) FROM turns GROUP BY call_sid "
            "HAVING count(*) <> max(seq) + 1")
        acked = sum(self.turns_acked)
        received = self._received_sms()
        sms_twice = sum(n - 1 for p, n in received.items() if p in self.enrolled and n > 1)
        sms_lost = [p for p in self.enrolled if received[p] == 0]
        outbox = {r[0]: r[1] for r in await self.sql(
            "SELECT status, count(*) FROM outbox WHERE to_addr = ANY($1::text[]) "
            "GROUP BY status", self.enrolled)}
        placed = Counter(c.to for c in self.twilio.calls.calls.values())
        states: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        for jid in self.jobs:
            job = await Job.fromId(self.queue, jid)
            state = "missing" if job is None else await job.getState()
            states[state] += 1
            if job is not None and state == "failed":
                failed[str(job.failedReason)[:80]] += 1
        phones = list(self.jobs.values())
        redis = health.get("redis", {}).get("sessions", {})
        dialed_twice = sum(placed[p] - 1 for p in phones if placed[p] > 1)
        never_dialed = sum(1 for p in phones if placed[p] == 0)
        dropped_outside_kill = sum(n for ph, n in drops.items() if ph != "serve_kill9")
        report = {
            "calls": self.n_calls,
            "calls_connected": len(self.load.run.calls),
            "calls_failed_to_connect": self.load.failed_to_connect,
            "calls_dropped": dict(drops),
            "calls_on_killed_server": self.calls_at_kill,
            "calls_dropped_by_other_faults": dropped_outside_kill,
            # Short calls placed every 2 s all along: how many heard the agent within
            # their 3 s, and the phase of those that did not (or could not connect).
            "probe_calls": {"placed": len(self.prober.probes),
                            "greeted_within_3s": sum(p.ok for p in self.prober.probes),
                            "not_greeted": dict(Counter(p.phase for p in self.prober.probes
                                                        if not p.ok)),
                            "not_connected": dict(Counter(
                                p.phase for p in self.prober.probes if not p.call_sid))},
            "turns": {"acknowledged": acked, "stored": stored,
                      "lost": max(0, acked - stored),
                      "calls_with_holes": len(holes),
                      "writer": health.get("store", {}).get("turns", {})},
            "sms": {"enrolled": len(self.enrolled), "received_by_twilio": sum(
                received[p] for p in self.enrolled), "sent_twice": sms_twice,
                "lost": len(sms_lost), "outbox": outbox,
                # Each doubled text: the phases its copies reached Twilio in.
                "twice_in": [[self.phase_at(m.at) for m in self.twilio.messages.messages
                              if m.to == p] for p, n in received.items()
                             if p in self.enrolled and n > 1]},
            "dial_jobs": {"pushed": len(self.jobs), "states": dict(states),
                          "failed_reasons": dict(failed),
                          "calls_create": sum(placed[p] for p in phones),
                          "dialed_twice": dialed_twice, "never_dialed": never_dialed,
                          "twice_in": [[self.phase_at(c.created_at)
                                        for c in self.twilio.calls.calls.values() if c.to == p]
                                       for p in phones if placed[p] > 1],
                          "push_retries_while_redis_down": self.job_push_errors},
            "sessions": {k: redis.get(k) for k in ("lostDirty", "evicted", "dirty")},
            "recovery_s": self.recovery,
            "notes": self.notes,
        }
        report["ok"] = (dropped_outside_kill == 0 and report["turns"]["lost"] == 0
                        and not holes and sms_twice == 0 and not sms_lost
                        and dialed_twice == 0 and never_dialed == 0
                        and states.get("completed", 0) == len(self.jobs)
                        and drops.get("serve_kill9", 0) <= self.calls_at_kill)
        return report

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.load is not None and not self.load.run.stopping:
                await self.load.hang_up()
        with contextlib.suppress(Exception):
            if self.prober is not None:
                await self.prober.stop()
        if self._pusher is not None:
            self._pusher.cancel()
        self.serve.stop()
        self.realtime.stop()
        with contextlib.suppress(Exception):
            if self.queue is not None:
                await self.queue.close()
        with contextlib.suppress(Exception):
            if self._pg_pool is not None:
                await asyncio.wait_for(self._pg_pool.close(), 5)
        if self._http is not None:
            await self._http.close()
        await self.twilio.stop()
        self.redis.stop()
        self.pg.stop()


def received_ok(received: Counter[str], phone: str) -> bool:
    return received[phone] >= 1


async def run_chaos(*, calls: int, sms: int, jobs: int, ramp_s: float | None = None,
                    keep: bool = False, root: Path | None = None) -> dict[str, Any]:
    """One harness run; the report. Everything started is stopped, the temp dir removed
    unless `keep` (then its path is in the report: logs of every process)."""
    own = root is None
    root = root or Path(tempfile.mkdtemp(prefix="leadline-chaos-"))
    os.chmod(root, 0o755)
    harness = Harness(calls=calls, sms=sms, jobs=jobs, root=root,
                      ramp_s=ramp_s if ramp_s is not None else max(2.0, calls / 20))
    t0 = time.monotonic()
    try:
        report = await harness.run()
    except BaseException:
        print(f"chaos: failed; logs in {root}\n--- serve.log ---\n{harness.serve.tail(4000)}",
              file=sys.stderr)
        keep = True
        raise
    finally:
        await harness.close()
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    if keep:
        report["logs"] = str(root)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/chaos.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100, help="live calls during the faults")
    parser.add_argument("--sms", type=int, default=40, help="campaign texts (leads enrolled)")
    parser.add_argument("--jobs", type=int, default=30, help="dial jobs pushed")
    parser.add_argument("--ramp-seconds", type=float, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir with every log")
    args = parser.parse_args(argv)
    import uvloop

    report = uvloop.run(run_chaos(calls=args.calls, sms=args.sms, jobs=args.jobs,
                                  ramp_s=args.ramp_seconds, keep=args.keep))
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
