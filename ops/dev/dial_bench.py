"""`leadline bench dial`: N call jobs through the real app against the fake callee.

Everything in one process, as the tests run it: the leadline app on a free port with
its dialer sidecar (`concurrency` calls in flight), the real Redis queue, a temporary
SQLite store, and `ops.dev.fake_twilio` answering `calls.create` and playing a callee
that answers, hears the greeting and hangs up (`--callee human`), or is busy (`--callee
busy`: no media, so the figure is the dialer's own, not the fake's speech synthesis
sharing the process). One JSON object out:

Jobs are added at `--rate` per second (0: all at once, in one `addBulk` as a Node tool
sends a batch: a burst that measures queueing behind the store as much as the dialer).

`--twilio-process` runs the fake Twilio in its own process (`leadline dev fake-twilio`),
as the real one is: its HTTP server, its signed status callbacks and its callee no longer
share leadline's event loop, so the figure is the dialer's alone. Job → dial is then the
dialer's own stamp (`DialerStats.job_to_dial_ms`, taken as calls.create is sent) instead
of the fake's arrival time; duplicates are counted from the fake's Calls list (one
callee number per job); first-audio figures need the fake in process.

- `job_to_dial_ms`: the job's creation (the producer's clock) to calls.create arriving
  at the fake, p50/p99;
- `answer_to_first_audio_ms`: the callee answering (stream opened) to the agent's first
  audio frame on the stream, p50/p99;
- `hello_to_agent_audio_ms`: the end of the callee's first line ("Hello, front desk.")
  to the agent's next audio on the stream (the reply, or the greeting of a brain that
  waits for a person), p50/p99;
- `duplicate_dials`: calls.create beyond one per job; `lost_jobs`: jobs not finished
  within the time bound; `outcomes`: by outcome;
- `cpu_ms_per_job`: this process's CPU over the run per job; `calls_per_core`: seconds of
  call (the outcomes' `durationS`) per CPU second, i.e. concurrent calls per core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import UTC, datetime

    import msgspec
    from aiohttp import web
    from bullmq import Job, Queue

    from ops import config as config_mod
    from ops.app import RUNTIME, build_app
    from ops.dev.fake_twilio import Callee, CalleeScript, FakeTwilio

    token = "bench-token-" + uuid.uuid4().hex[:8]
    account = "AC" + "b" * 32
    data = tempfile.mkdtemp(prefix="leadline-dial-bench-")
    callee = Callee(answer=args.callee, lines=["Hello, front desk."], ring_ms=100, max_s=15)
    twilio: Any = None
    remote: Any = None
    if getattr(args, "twilio_process", False):
        remote = await _RemoteTwilio.start(account, token, callee, data)
        base_url = remote.base_url
    else:
        twilio = await FakeTwilio(account, token, script=CalleeScript(default=callee)).start()
        base_url = twilio.base_url
    queue_name = f"dial-bench-{uuid.uuid4().hex[:8]}"
    cfg = config_mod.load(None, environ={
        "LEADLINE_TWILIO_AUTH_TOKEN": token, "LEADLINE_TWILIO_ACCOUNT_SID": account,
        "LEADLINE_TWILIO_API_BASE_URL": base_url,
        "LEADLINE_ARTIFACTS_DIRECTORY": f"{data}/artifacts",
        "LEADLINE_STORE_DATABASE_URL": args.database_url or f"sqlite:///{data}/bench.db",
        "LEADLINE_STORE_JOURNAL_DIR": f"{data}/journal",
        "LEADLINE_SCRIPTED_MESSAGES_DIRECTORY": f"{data}/messages",
        "LEADLINE_BRAIN_KIND": "scripted", "LEADLINE_LOG_LEVEL": "WARNING",
        "LEADLINE_DIALER_ENABLED": "true", "LEADLINE_DIALER_REDIS_URL": args.redis_url,
        "LEADLINE_DIALER_QUEUE": queue_name, "LEADLINE_DIALER_CALLER_ID": "+14155550100",
        "LEADLINE_DIALER_CONCURRENCY": str(args.concurrency),
        "LEADLINE_DIALER_POLL_S": "0.5", "LEADLINE_SERVER_MAX_CALLS": str(args.jobs + 10),
    })
    app = build_app(cfg)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    runtime = app[RUNTIME]
    runtime.config = msgspec.structs.replace(
        runtime.config, twilio=msgspec.structs.replace(runtime.config.twilio, public_url=url))
    # The gate's clock at a weekday noon in California: the figures must not depend on the
    # hour the bench runs at (quiet hours would delay every job).
    noon = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)
    runtime.dialer.dialer.now = lambda: noon
    queue = Queue(queue_name, {"connection": args.redis_url})
    jobs: list[Any] = []
    finished: dict[str, Any] = {}
    started = time.monotonic()
    skip = {remote.proc.pid} if remote is not None else set()
    cpu_started = _cpu_s(skip)
    try:
        gap = 1.0 / args.rate if args.rate > 0 else 0.0

        def data_of(i: int) -> dict[str, Any]:
            return {"campaignId": "bench", "step": i,
                    "contact": {"firstName": "Ada", "phone": f"+1415555{2000 + i % 8000:04d}"}}

        if gap:
            for i in range(args.jobs):
                await asyncio.sleep(gap)
                jobs.append(await queue.add("call", data_of(i), {}))
        else:
            jobs = list(await queue.addBulk([{"name": "call", "data": data_of(i)}
                                             for i in range(args.jobs)]))
        deadline = time.monotonic() + args.timeout_s
        # Wait on the queue's counts (one call), not on each job: the bench's own polling
        # must not compete with the dialer on the loop it measures.
        while time.monotonic() < deadline:
            counts = await queue.getJobCounts("completed", "failed")
            if sum(counts.values()) >= len(jobs):
                break
            await asyncio.sleep(0.5)
        while len(finished) < len(jobs) and time.monotonic() < deadline:
            for job in jobs:
                if job.id in finished:
                    continue
                fresh = await Job.fromId(queue, job.id)
                if fresh is not None and fresh.finishedOn:
                    finished[job.id] = fresh
            await asyncio.sleep(0.5)
        wall = time.monotonic() - started
        cpu_s = _cpu_s(skip) - cpu_started
        created = {j.id: j.timestamp for j in jobs}
        by_job: dict[str, list[Any]] = {}
        first_audio: list[float] = []
        after_hello: list[float] = []
        if remote is not None:
            listed = await remote.calls()
            for call in listed:
                by_job.setdefault(call["to"], []).append(call)
            dial_ms = list(runtime.dialer.stats.job_to_dial_ms)
            creates = len(listed)
        else:
            for call in twilio.calls.values():
                by_job.setdefault(call.parameters.get("JobId", "") or
                                  _job_of(call.form.get("Twiml", "")), []).append(call)
            dial_ms = [(calls[0].created_at * 1000 - created[jid])
                       for jid, calls in by_job.items() if jid in created]
            first_audio = [(c.first_agent_audio_at - c.answered_at) * 1000
                           for c in twilio.calls.values()
                           if c.first_agent_audio_at and c.answered_at]
            after_hello = [(c.reply_after_line_at - c.first_line_end_at) * 1000
                           for c in twilio.calls.values()
                           if c.reply_after_line_at and c.first_line_end_at]
            creates = twilio.creates
        outcomes: dict[str, int] = {}
        for job in finished.values():
            key = (job.returnvalue or {}).get("outcome") if job.returnvalue else \
                f"failed: {str(job.failedReason)[:40]}"
            outcomes[str(key)] = outcomes.get(str(key), 0) + 1
        return {
            "bench": "dial", "jobs": args.jobs, "concurrency": args.concurrency,
            "callee": args.callee, "rate_per_s": args.rate,
            "store": "postgresql" if args.database_url.startswith("postgres") else "sqlite",
            "wall_s": round(wall, 2),
            "job_to_dial_ms": {"p50": _pct(dial_ms, 0.5), "p99": _pct(dial_ms, 0.99)},
            "answer_to_first_audio_ms": {"p50": _pct(first_audio, 0.5),
                                         "p99": _pct(first_audio, 0.99)},
            "hello_to_agent_audio_ms": {"p50": _pct(after_hello, 0.5),
                                        "p99": _pct(after_hello, 0.99)},
            "twilio": "process" if remote is not None else "in-process",
            "cpu_ms_per_job": round(cpu_s * 1000 / max(1, len(jobs)), 2),
            # Seconds of call per second of this process's CPU: the calls one core holds
            # at once (the fake's share included unless --twilio-process).
            "calls_per_core": round(sum(float((j.returnvalue or {}).get("durationS") or 0)
                                        for j in finished.values()) / max(cpu_s, 1e-9), 1),
            "calls_create": creates,
            "duplicate_dials": max(0, creates - len(by_job)),
            "lost_jobs": len(jobs) - len(finished),
            "outcomes": outcomes,
        }
    finally:
        await queue.obliterate(force=True)
        await queue.close()
        await runner.cleanup()
        if twilio is not None:
            await twilio.stop()
        if remote is not None:
            await remote.stop()
        shutil.rmtree(data, ignore_errors=True)


class _RemoteTwilio:
    """`leadline dev fake-twilio` in a child process, and its Calls list over REST."""

    def __init__(self, proc: Any, base_url: str, account: str, token: str) -> None:
        self.proc, self.base_url, self.account, self.token = proc, base_url, account, token

    @classmethod
    async def start(cls, account: str, token: str, callee: Any, data: str) -> _RemoteTwilio:
        import os
        import socket
        from pathlib import Path

        import msgspec

        script = os.path.join(data, "callee.toml")
        text = "[default]\n" + "".join(
            f"{k} = {json.dumps(v)}\n" for k, v in msgspec.to_builtins(callee).items())
        await asyncio.to_thread(Path(script).write_text, text, "utf-8")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        exe = os.path.join(os.path.dirname(sys.executable), "leadline")
        proc = await asyncio.create_subprocess_exec(
            exe, "dev", "fake-twilio", "--port", str(port), "--account-sid", account,
            "--auth-token", token, "--script", script,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        return cls(proc, f"http://127.0.0.1:{port}", account, token)

    async def calls(self) -> list[dict[str, Any]]:
        import aiohttp

        url = f"{self.base_url}/2010-04-01/Accounts/{self.account}/Calls.json?PageSize=100000"
        async with aiohttp.ClientSession(auth=aiohttp.BasicAuth(self.account, self.token)) \
                as http, http.get(url) as resp:
            return list((await resp.json())["calls"])

    async def stop(self) -> None:
        self.proc.terminate()
        await self.proc.wait()


def _cpu_s(skip: set[int]) -> float:
    """CPU seconds of this process and its children (the speech recogniser's worker
    processes), leaving out the fake Twilio's process."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        if child.pid in skip:
            continue
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


def _job_of(twiml: str) -> str:
    import re

    match = re.search(r'name="JobId" value="([^"]*)"', twiml)
    return match.group(1) if match else ""


def run_bench(args: argparse.Namespace) -> int:
    if args.jobs < 1 or args.jobs > 2000 or args.concurrency < 1:
        print("error: --jobs must be 1..2000 and --concurrency >= 1", file=sys.stderr)
        return 2
    result = asyncio.run(_bench(args))
    print(json.dumps(result))
    return 0
