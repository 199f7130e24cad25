"""Live calls for the harness: the load bench's callers, kept up until told to hang up.

`leadline bench calls` measures a fixed window and hangs up; here the same callers
(`ops.dev.bench`: one shared 20 ms sender, picows readers, Twilio's playout model) stay
on the line across every fault, and each drop is stamped with the phase it happened in,
so a drop can be blamed on the fault that caused it. Short probe calls (`ops.dev.sim`)
placed every few seconds say when a restarted server answers again and which brain it
gives a new call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ops.dev import bench
from ops.dev.sim import SimError, SimOptions, sim_call
from telephony.twilio.signature import SignatureChecker


@dataclass
class Drop:
    index: int
    phase: str
    reason: str
    at: float


class CallLoad:
    def __init__(self, url: str, calls: int, auth_token: str, ramp_s: float) -> None:
        self.options = bench.BenchOptions(url=url, calls=calls, seconds=3600,
                                          ramp_seconds=ramp_s, auth_token=auth_token)
        self.phase = "ramp"
        self.drops: list[Drop] = []
        self.run: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._seen: set[int] = set()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        o = self.options
        bench._raise_fd_limit(2 * o.calls + 512)
        turn, barge = await asyncio.to_thread(bench._render, o)
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=bench.HTTP_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=64))
        health = await bench._health(self._http, o.url)
        stop_ms = float(health["config"]["vad"]["stop_ms"])
        self.run = bench._Run(o, turn, barge, stop_ms, time.monotonic(),
                              SignatureChecker(o.auth_token))
        self._tasks = [asyncio.create_task(self.run.tick()),
                       asyncio.create_task(self.run.ramp(self._http)),
                       asyncio.create_task(self._watch())]

    async def ramped(self, limit_s: float) -> None:
        await asyncio.wait({self._tasks[1]}, timeout=limit_s)

    async def _watch(self) -> None:
        while True:
            self.note_drops()
            await asyncio.sleep(0.1)

    def note_drops(self) -> None:
        for call in self.run.calls:
            if call.dropped is not None and call.index not in self._seen:
                self._seen.add(call.index)
                self.drops.append(Drop(call.index, self.phase, call.dropped, time.monotonic()))

    @property
    def failed_to_connect(self) -> dict[str, int]:
        return dict(self.run.failed)

    def live(self) -> list[Any]:
        return [c for c in self.run.calls if c.live and c.dropped is None]

    def received(self) -> dict[int, int]:
        """Agent frames each live call has heard so far (to see replies continue)."""
        return {c.index: c.frames_received for c in self.live()}

    async def hang_up(self) -> None:
        self.note_drops()
        self.run.stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.hang_up() for c in self.run.calls), return_exceptions=True)
        if self._http is not None:
            await self._http.close()


@dataclass
class Probe:
    at: float
    ok: bool
    call_sid: str = ""
    detail: str = ""
    phase: str = ""


@dataclass
class Prober:
    """A short call every `every_s`: greeting heard or not, and its call SID."""

    url: str
    auth_token: str
    every_s: float = 2.0
    from_number: str = "+15005550009"
    seconds: float = 3.0
    probes: list[Probe] = field(default_factory=list)
    # Set by the harness: the fault under way when each probe call starts.
    phase: str = "ramp"
    _task: asyncio.Task[None] | None = None
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            task = asyncio.create_task(self._one())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(self.every_s)

    async def _one(self) -> None:
        at, phase = time.monotonic(), self.phase
        try:
            result = await sim_call(SimOptions(
                url=self.url, auth_token=self.auth_token, hangup_after_s=self.seconds,
                wait_for_agent_s=self.seconds, from_number=self.from_number))
        except (SimError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            self.probes.append(Probe(at, False, detail=f"{type(exc).__name__}: {exc}"[:200],
                                     phase=phase))
            return
        self.probes.append(Probe(at, result.responses > 0, result.call_sid,
                                 "" if result.responses else "no agent audio", phase))

    def first_ok_after(self, t: float) -> Probe | None:
        good = [p for p in self.probes if p.ok and p.at >= t]
        return min(good, key=lambda p: p.at) if good else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=self.seconds + 15)
