"""Campaign figures: due-claim time per 1k over N enrollments, a full scheduler pass, email
sends/s to a local SMTP server, and the report query at M messages; prints JSON.

    .venv/bin/python benchmarks/campaign_bench.py --backend sqlite --enrollments 100000 \
        --messages 200000
    .venv/bin/python benchmarks/campaign_bench.py --backend postgresql ...

PostgreSQL runs in a fresh schema of $LEADLINE_TEST_DATABASE_URL (default the local test
server), dropped afterwards. Every loop is bounded by its count; the machine is shared,
so figures are indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = datetime(2026, 6, 9, 16, 0, tzinfo=UTC)
CAMPAIGN = """
name = "bench"
[[touches]]
channel = "sms"
delay = "0d"
template = "Hi {first_name}, it's {business_name}. {booking_url}"
[[touches]]
channel = "sms"
delay = "3d"
template = "Following up, {first_name}: {booking_url}"
[[touches]]
channel = "email"
delay = "4d"
subject = "Last note"
template = "Hi {first_name}, book any time: {booking_url}"
"""


def phone(i: int) -> str:
    """Distinct valid numbers: each bench section uses its own area code (offset)."""
    area = "312" if i >= 8_000_000 else "415" if i >= 5_000_000 else "212"
    return f"+1{area}{2000000 + i % 1_000_000:07d}"


async def seed(db: Any, n: int, offset: int = 0) -> None:
    from store.models import LeadInput

    for start in range(0, n, 1000):
        await db.upsert_leads([LeadInput(phone=phone(offset + i), first_name="Lee",
                                         email=f"l{offset + i}@example.com")
                               for i in range(start, min(n, start + 1000))])


async def bench_claim(db: Any, n: int) -> dict[str, Any]:
    from sms.campaigns import service

    await seed(db, n)
    rec, _ = await service.load(db, CAMPAIGN)
    t = time.perf_counter()
    for start in range(0, n, 5000):
        await db.enroll(rec.id, [phone(i) for i in range(start, min(n, start + 5000))],
                        due_at=T0, channel="sms", at=T0)
    enroll_s = time.perf_counter() - t
    times = []
    claimed = 0
    while True:
        t = time.perf_counter()
        batch = await db.claim_enrollments(now=T0, limit=1000, lease_s=600, channels=["sms"])
        times.append(time.perf_counter() - t)
        if not batch:
            break
        claimed += len(batch)
    times = times[:-1] or times
    times.sort()
    t = time.perf_counter()
    changed = await db.claim_changed_enrollments(now=T0, limit=1000, lease_s=1)
    sweep_s = time.perf_counter() - t
    return {"enrollments": n, "enroll_s": round(enroll_s, 2), "claimed": claimed,
            "claim_ms_per_1k_median": round(1000 * times[len(times) // 2], 2),
            "claim_ms_per_1k_p90": round(1000 * times[int(len(times) * 0.9)], 2),
            "changed_check_ms_over_all": round(1000 * sweep_s, 2),
            "changed_found": len(changed)}


async def bench_pass(db: Any, n: int) -> dict[str, Any]:
    """A full pass (stop rules, compliance with audit, render, outbox commit, advance)."""
    from agents.compliance.engine import CompliancePolicy
    from sms.campaigns import service
    from sms.campaigns.scheduler import Scheduler
    from sms.campaigns.settings import CampaignSettings

    offset = 5_000_000
    await seed(db, n, offset)
    await service.load(db, CAMPAIGN.replace('"bench"', '"pass"'))
    rec = await db.get_campaign("pass")
    await db.enroll(rec.id, [phone(offset + i) for i in range(n)], due_at=T0, channel="sms",
                    at=T0)
    policy = CompliancePolicy()
    settings = CampaignSettings(batch=500)
    sched = Scheduler(db, settings=lambda: settings, policy=lambda: policy,
                      business_name=lambda: "Acme", booking_url=lambda: "https://b.example",
                      sms_sender=lambda: "+14155550123", email_from=lambda: None,
                      clock=lambda: T0)
    t = time.perf_counter()
    result = await sched.tick(T0 + timedelta(seconds=1))
    dt = time.perf_counter() - t
    return {"pass_enrollments": n, "pass_sent": len(result.sent), "pass_s": round(dt, 2),
            "pass_touches_per_s": round(len(result.sent) / dt, 1)}


async def bench_email(db: Any, n: int) -> dict[str, Any]:
    from aiosmtpd.controller import Controller

    from sms.email.sender import EmailSender, SmtpTransport
    from sms.email.settings import EmailSettings

    class Sink:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Sink.count += 1
            return "250 OK"

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Sink(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        cfg = EmailSettings(host="127.0.0.1", port=port, starttls=False,
                            from_address="hi@acme.example", postal_address="1 Main St",
                            unsubscribe_base_url="https://acme.example", batch=200)
        for i in range(n):
            await db.queue_email(phone=phone(i), to_addr=f"l{i}@example.com",
                                 from_addr=cfg.from_address, subject="Hello",
                                 body="Hi there,\n\nA note from Acme.", purpose="marketing",
                                 idempotency_key=f"marketing:campaign:bench:{i}", at=T0)
        sender = EmailSender(db, SmtpTransport(lambda: cfg), settings=lambda: cfg,
                             business_name=lambda: "Acme", secret="bench", clock=lambda: T0)
        t = time.perf_counter()
        while await sender.drain_once():
            pass
        dt = time.perf_counter() - t
        await sender.transport.aclose()
    finally:
        ctl.stop()
    return {"emails": n, "email_sent": sender.stats.sent, "email_s": round(dt, 2),
            "emails_per_s": round(sender.stats.sent / dt, 1)}


async def bench_report(db: Any, messages: int) -> dict[str, Any]:
    """`messages` rows: 3 touches (sent) per enrollment plus one inbound reply for every
    third lead, written in bulk, then the report of that campaign."""
    from sms.campaigns import service
    from sms.report import build_report

    per_lead = 3 + 1 / 3
    leads = int(messages / per_lead)
    offset = 8_000_000
    await seed(db, leads, offset)
    await service.load(db, CAMPAIGN.replace('"bench"', '"report"'))
    rec = await db.get_campaign("report")
    await db.enroll(rec.id, [phone(offset + i) for i in range(leads)], due_at=T0,
                    channel="sms", at=T0)
    ids = {e.phone: e.id for e in await _all_enrollments(db, rec.id)}
    d = db.dialect
    written = 0
    items = list(ids.items())
    for start in range(0, len(items), 2000):
        chunk = items[start:start + 2000]
        async with db.transaction("bench") as tx:
            msg_rows = []
            for p, eid in chunk:
                for k in (1, 2, 3):
                    at = d.ts(T0 + timedelta(days=3 * k))
                    msg_rows.append((p, "outbound", "sms", "marketing", "hi", "+14155550123", p,
                                     f"SMb{eid}x{k}", "delivered", "[]", 1,
                                     f"marketing:campaign:{eid}:{k}", at, at))
                if eid % 3 == 0:
                    at = d.ts(T0 + timedelta(days=3, hours=2))
                    msg_rows.append((p, "inbound", "sms", "conversation", "ok", p,
                                     "+14155550123", f"SMi{eid}", "received", "[]", 1, None,
                                     at, at))
            cols = (("phone", "text"), ("direction", "text"), ("channel", "text"),
                    ("purpose", "text"), ("body", "text"), ("from_addr", "text"),
                    ("to_addr", "text"), ("provider_sid", "text"), ("status", "text"),
                    ("status_history", "jsonb"), ("segments", "int"),
                    ("idempotency_key", "text"), ("created_at", "timestamptz"),
                    ("updated_at", "timestamptz"))
            await tx.insert_many("messages", cols, msg_rows)
            written += len(msg_rows)
            keys = [r[11] for r in msg_rows if r[11]]
            got = await tx.fetch("SELECT id, idempotency_key FROM messages WHERE"
                                 f" idempotency_key {d.any_of(1, 'text')}", d.list_param(keys))
            touch_rows = []
            by_key = {k: i for i, k in got}
            for p, eid in chunk:
                for k in (1, 2, 3):
                    touch_rows.append((eid, rec.id, p, k, "sms", 0,
                                       by_key[f"marketing:campaign:{eid}:{k}"], "queued",
                                       d.ts(T0 + timedelta(days=3 * k))))
            await tx.insert_many("campaign_touches", (
                ("enrollment_id", "bigint"), ("campaign_id", "bigint"), ("phone", "text"),
                ("touch", "int"), ("channel", "text"), ("variant", "int"),
                ("message_id", "bigint"), ("outcome", "text"), ("at", "timestamptz")),
                touch_rows)
    if d.name == "postgres":
        async with db.transaction("analyze") as tx:
            await tx.execute("ANALYZE")
    t = time.perf_counter()
    [rep] = await build_report(db, campaign="report")
    dt = time.perf_counter() - t
    return {"report_messages": written, "report_leads": leads, "report_s": round(dt, 2),
            "report_sent": rep["sent"], "report_replied": rep["replied"]}


async def _all_enrollments(db: Any, cid: int) -> list[Any]:
    out: list[Any] = []
    after = 0
    while page := await db.list_enrollments(cid, limit=10_000, after_id=after):
        out += page
        after = page[-1].id
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--enrollments", type=int, default=100_000)
    ap.add_argument("--pass-enrollments", type=int, default=2_000)
    ap.add_argument("--emails", type=int, default=500)
    ap.add_argument("--messages", type=int, default=200_000)
    args = ap.parse_args()
    from store.database import open_database

    out: dict[str, Any] = {"backend": args.backend}
    if args.backend == "sqlite":
        tmp = tempfile.mkdtemp(prefix="campaign-bench-")
        db = await open_database(f"sqlite:///{tmp}/bench.db")
        try:
            out |= await bench_claim(db, args.enrollments)
            out |= await bench_pass(db, args.pass_enrollments)
            out |= await bench_email(db, args.emails)
            out |= await bench_report(db, args.messages)
        finally:
            await db.close()
    else:
        from tests.store.conftest import pg_schema

        async with pg_schema() as url:
            db = await open_database(url)
            try:
                out |= await bench_claim(db, args.enrollments)
                out |= await bench_pass(db, args.pass_enrollments)
                out |= await bench_email(db, args.emails)
                out |= await bench_report(db, args.messages)
            finally:
                await db.close()
    sys.stdout.write(msgspec.json.encode(out).decode() + "\n")


if __name__ == "__main__":
    asyncio.run(main())
