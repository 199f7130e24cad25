"""Sales scripts wired in: `[sales]` config (paths relative to the file), the follower on
outbound calls, the summary on the call's audit trail, a job's `script` reaching the dial."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bullmq import Job, Queue

from agents.brain import CallContext
from agents.compliance.settings import ComplianceSettings
from agents.sales.script import builtin_script
from ops import config as config_mod
from ops.sales import SalesCalls, follower_for
from store.database import Database, open_database
from telephony.dialer.leg import DialRequest
from telephony.dialer.outcome import Conversation
from telephony.dialer.service import DialerService
from telephony.dialer.settings import DialerSettings
from telephony.settings import TwilioSettings
from tests.agents.sales.test_script import GOOD
from tests.helpers import eventually

REDIS_URL = os.environ.get("LEADLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NOON_PT = datetime(2026, 3, 3, 20, 0, tzinfo=UTC)


def _config(tmp_path: Path, sales: str, script: str = GOOD) -> Path:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "recall.toml").write_text(script)
    path = tmp_path / "leadline.toml"
    path.write_text(sales)
    return path


def test_scripts_load_relative_to_the_config_file(tmp_path: Path, monkeypatch) -> None:
    path = _config(tmp_path, '[sales]\nscripts = { recall = "scripts/recall.toml" }\n'
                             'default = "recall"\n')
    monkeypatch.chdir("/")
    cfg = config_mod.load(path, environ={})
    assert cfg.sales.names == ("default", "recall")
    assert cfg.sales.script("recall").name == "Recall"
    assert cfg.sales.script("nope").name == "Recall"  # unknown → the configured default
    assert cfg.sales.script("default") is builtin_script()  # always there
    names, default = cfg.sales.job_scripts(cfg.dialer.scripts, cfg.dialer.default_script)
    assert names == ("default", "recall") and default == "recall"


@pytest.mark.parametrize(("text", "message"), [
    ('[sales]\nscripts = { recall = "scripts/recall.toml" }\ncolour = 1\n',
     "unknown field `colour`"),
    ('[sales]\nscripts = { recall = "scripts/missing.toml" }\n', "sales.scripts.recall: "
                                                                  "sales script not found"),
    ('[sales]\ndefault = "recall"\n', "sales.default: 'recall' is not one of the scripts"),
    ('[sales]\nscripts = { "bad name!" = "scripts/recall.toml" }\n', "bad script name"),
])
def test_bad_sales_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(config_mod.ConfigError, match=message):
        config_mod.load(path, environ={})


def test_a_bad_script_fails_the_load_naming_file_and_key(tmp_path: Path) -> None:
    path = _config(tmp_path, '[sales]\nscripts = { recall = "scripts/recall.toml" }\n',
                   GOOD.replace("{practiceName}.", "{clinic}."))
    with pytest.raises(config_mod.ConfigError,
                       match=r"recall.toml: unknown placeholder \{clinic\} in stages.intro"):
        config_mod.load(path, environ={})


# -- the observer ------------------------------------------------------------------------


class FakeDb:
    def __init__(self) -> None:
        self.audits: list[tuple[str, str | None, dict[str, Any]]] = []

    async def audit(self, kind: str, *, call_sid: str | None = None,
                    detail: dict[str, Any] | None = None) -> int:
        self.audits.append((kind, call_sid, dict(detail or {})))
        return len(self.audits)


def _call(direction: str, params: dict[str, str]) -> Any:
    context = CallContext(call_sid="CA" + uuid.uuid4().hex, direction=direction,  # type: ignore[arg-type]
                          to_number="+14155552671", parameters=params)
    return SimpleNamespace(context=context, call_sid=context.call_sid)


PARAMS = {"DialKey": "k", "Script": "default", "FirstName": "Ada", "LastName": "",
          "PracticeName": "Bay Dental", "State": "CA", "Email": "ada@bay.example"}


async def test_outbound_calls_with_a_script_get_a_follower_and_a_summary() -> None:
    cfg = config_mod.build({})
    db = FakeDb()
    observer = SalesCalls(lambda: cfg, lambda: db)
    inbound = _call("inbound", PARAMS)
    observer.call_started(inbound)
    assert inbound.context.sales is None
    bare = _call("outbound", {"DialKey": "k"})
    observer.call_started(bare)
    assert bare.context.sales is None
    call = _call("outbound", PARAMS)
    observer.call_started(call)
    sales = call.context.sales
    assert sales is not None and sales.name == "default"
    assert sales.contact["phone"] == "+14155552671"
    assert sales.opening().startswith("Hi Ada, this is Alex")
    # The realtime brain does not move the follower; the observer still hears the words.
    for text in ("Can you bring lunch?", "We already have insurance.",
                 "No thanks, not interested."):
        observer.transcript(call, "caller", text)
    observer.transcript(call, "agent", "What does it cost?")  # the agent's words: not ours
    observer.call_ended(call)
    await observer.drain()
    ((kind, sid, detail),) = db.audits
    assert kind == "sales_call" and sid == call.call_sid
    assert detail["objections"] == ["lunch", "competitor"]
    assert detail["declineReason"] == "No thanks, not interested."
    assert detail["script"] == "default"


def test_the_dialer_outcome_uses_the_scripts_objection_keys() -> None:
    cfg = config_mod.build({})
    follower = follower_for(cfg, PARAMS, "+14155552671")
    assert follower is not None
    conversation = Conversation(follower.script)
    for text in ("We don't see reps.", "What does it cost?", "Can you bring us lunch?",
                 "We need approval from the office manager.", "We already have a broker."):
        conversation.heard(text)
        follower.caller_turn(text)
    assert conversation.objections == follower.objections == [
        "no_reps", "price", "lunch", "authority", "competitor"]
    assert conversation.detail("human")["objections"] == follower.objections


# -- a job's script reaching the dial -------------------------------------------------


@dataclass
class BusyPlacer:
    db: Database
    service: DialerService | None = None
    requests: list[DialRequest] = field(default_factory=list)

    async def place(self, request: DialRequest, base_url: str) -> str:
        self.requests.append(request)
        sid = "CA" + uuid.uuid4().hex
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(
            self._end(sid)))
        return sid

    async def _end(self, sid: str) -> None:
        for _ in range(100):
            if await self.db.get_dial_by_call_sid(sid) is not None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        await self.db.update_dial_status(sid, "busy", outcome="busy", duration_s=0)  # type: ignore[attr-defined]
        assert self.service is not None
        self.service.waiters.notify(sid)

    async def hangup(self, call_sid: str) -> None: ...

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        return None


async def test_a_jobs_script_selects_the_configured_script(tmp_path: Path) -> None:
    path = _config(tmp_path, '[sales]\nscripts = { recall = "scripts/recall.toml" }\n')
    cfg = config_mod.load(path, environ={})
    db = await open_database(f"sqlite:///{tmp_path}/d.db")
    name = f"sales-unit-{uuid.uuid4().hex[:8]}"
    settings = DialerSettings(enabled=True, redis_url=REDIS_URL, queue=name,
                              caller_id="+14155550100", poll_s=0.1)
    twilio = TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t",
                            public_url="https://leadline.example.com")
    placer = BusyPlacer(db)
    service = DialerService(lambda: settings, lambda: twilio, ComplianceSettings, lambda: db,
                            now=lambda: NOON_PT, placer=placer)
    placer.service = service
    service.dialer.scripts = lambda: cfg.sales.job_scripts(settings.scripts,
                                                           settings.default_script)
    queue = Queue(name, {"connection": REDIS_URL})
    await service.start_worker()
    try:
        contact = {"phone": "+14155552671", "firstName": "Ada", "state": "CA",
                   "email": "ada@bay.example", "practiceName": "Bay Dental"}
        jobs = [await queue.add("call", {"script": script, "contact": contact})
                for script in ("recall", "nope", None)]
        for job in jobs:
            async def done(job_id: str = str(job.id)) -> Job | None:
                found = await Job.fromId(queue, job_id)
                return found if found is not None and found.finishedOn else None

            await eventually(done, f"job {job.id} finished", limit_s=20, interval_s=0.05)
        by_script = sorted(r.parameters["Script"] for r in placer.requests)
        assert by_script == ["default", "default", "recall"]
        request = placer.requests[0]
        assert request.parameters["State"] == "CA"
        assert request.parameters["Email"] == "ada@bay.example"
        # What the call side builds from those parameters.
        follower = follower_for(cfg, next(r.parameters for r in placer.requests
                                          if r.parameters["Script"] == "recall"),
                                "+14155552671")
        assert follower is not None and follower.script.name == "Recall"
    finally:
        await service.stop()
        await queue.obliterate(force=True)
        await queue.close()
        await db.close()
