"""`leadline campaigns …` and `leadline report`: drip campaigns from the command line.

    leadline campaigns load FILE.toml [--json]
    leadline campaigns list [--json]
    leadline campaigns enroll NAME (--all | --status S | --file F) [--now ISO] [--json]
    leadline campaigns tick [--now ISO] [--send] [--json]
    leadline campaigns pause NAME | resume NAME
    leadline campaigns preview NAME --lead NUMBER [--json]
    leadline report [--campaign NAME] [--since ISO] [--json]

Every command takes `--config FILE` (its [store] database_url, env overrides applied).
`tick` runs one scheduler pass as of NOW (default: the wall clock) — the same pass the
server runs on its own clock, safe beside a running server (claims are leased) — and
prints what it queued ("sent": committed to the SMS or email outbox), deferred and
skipped. With `--send` it also drains both outboxes once, as the server's senders would.
Exit codes: 0 ok, 1 not found, 2 bad input, 3 refused by policy. Only stdlib is
imported at module level; the store and the campaign code load inside the handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ops.config import Config
    from store.repository import SqlRepository


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    camp = subparsers.add_parser("campaigns", help="drip campaigns over SMS and email")
    sub = camp.add_subparsers(dest="campaigns_command", required=True)

    def cmd(name: str, help_: str, func: Callable[[argparse.Namespace], int]
            ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default=None, help="TOML config file (env overrides apply)")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)
        return p

    load = cmd("load", "validate and store a campaign file (again: replace it)", cmd_load)
    load.add_argument("file")
    cmd("list", "the stored campaigns", cmd_list)
    enroll = cmd("enroll", "enroll leads in a campaign", cmd_enroll)
    enroll.add_argument("name")
    who = enroll.add_mutually_exclusive_group(required=True)
    who.add_argument("--all", action="store_true", help="every lead")
    who.add_argument("--status", help="leads with this status")
    who.add_argument("--file", help="one phone per line, or a CSV with a phone column")
    enroll.add_argument("--now", help="enrollment time, ISO 8601 (default: now)")
    tick = cmd("tick", "run one scheduler pass", cmd_tick)
    tick.add_argument("--now", help="the pass's time, ISO 8601 (default: now)")
    tick.add_argument("--send", action="store_true",
                      help="also drain the SMS and email outboxes once")
    for name, func in (("pause", cmd_pause), ("resume", cmd_resume)):
        p = cmd(name, f"{name} a campaign", func)
        p.add_argument("name")
    preview = cmd("preview", "render each touch for one lead (sends nothing)", cmd_preview)
    preview.add_argument("name")
    preview.add_argument("--lead", required=True, help="the lead's phone number")

    report = subparsers.add_parser("report", help="campaign results")
    report.add_argument("--config", default=None, help="TOML config file")
    report.add_argument("--campaign", help="one campaign by name")
    report.add_argument("--since", help="touches and enrollments since, ISO 8601")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.set_defaults(func=cmd_report)


# plumbing --------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _error(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


def parse_time(text: str | None) -> datetime:
    """ISO 8601; a time without an offset is UTC; none: the wall clock."""
    if not text:
        return datetime.now(UTC)
    at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _run(args: argparse.Namespace,
         body: Callable[[Config, SqlRepository], Awaitable[int]]) -> int:
    from ops import config as config_mod

    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        return _error(str(exc))

    async def main() -> int:
        from store.database import open_database

        db = await open_database(cfg.store.database_url)
        try:
            return await body(cfg, db)  # type: ignore[arg-type]
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except Exception as exc:
        from sms.campaigns.model import CampaignError
        from sms.campaigns.service import CampaignNotFound
        from store.errors import StoreError
        from store.phones import InvalidPhoneNumber

        if isinstance(exc, CampaignNotFound | LookupError):
            return _error(str(exc), 1)
        if isinstance(exc, CampaignError | InvalidPhoneNumber | StoreError | ValueError |
                      OSError):
            return _error(str(exc))
        raise


# commands --------------------------------------------------------------------------


def cmd_load(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _error(f"{args.file}: {exc}")

    async def body(cfg: Config, db: SqlRepository) -> int:
        from sms.campaigns import service

        record, created = await service.load(db, text, args.file)
        out = {"name": record.name, "created": created,
               "touches": len(record.definition["touches"]), "paused": record.paused}
        if args.json:
            _print_json(out)
        else:
            print(f"{'loaded' if created else 'replaced'} campaign {record.name} "
                  f"({out['touches']} touches)")
        return 0

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    async def body(cfg: Config, db: SqlRepository) -> int:
        rows = [{"name": r.name, "business": r.business, "paused": r.paused,
                 "touches": len(r.definition["touches"])} for r in await db.list_campaigns()]
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                print(f"{r['name']}\t{r['touches']} touches{' paused' if r['paused'] else ''}")
        return 0

    return _run(args, body)


def cmd_enroll(args: argparse.Namespace) -> int:
    try:
        now = parse_time(args.now)
    except ValueError as exc:
        return _error(f"--now: {exc}")
    data: bytes | None = None
    if args.file:
        from pathlib import Path

        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            return _error(f"{args.file}: {exc}")

    async def body(cfg: Config, db: SqlRepository) -> int:
        import msgspec

        from sms.campaigns import service

        phones = service.phones_from_file(data) if data is not None else None
        summary = await service.enroll(db, args.name, phones=phones, status=args.status,
                                       everyone=args.all, now=now)
        out = msgspec.to_builtins(summary)
        if args.json:
            _print_json(out)
        else:
            print(f"enrolled {summary.enrolled}, already {summary.already}, "
                  f"skipped {len(summary.skipped)}")
        return 0

    return _run(args, body)


def cmd_tick(args: argparse.Namespace) -> int:
    try:
        now = parse_time(args.now)
    except ValueError as exc:
        return _error(f"--now: {exc}")

    async def body(cfg: Config, db: SqlRepository) -> int:
        from ops.campaigns import build_email_sender, build_scheduler, unsubscribe_secret
        from ops.messaging import build_parts

        conversation, sender = build_parts(lambda: cfg, db)
        try:
            scheduler = build_scheduler(lambda: cfg, db, conversation=conversation,
                                        clock=lambda: now)
            result = await scheduler.tick(now)
            out: dict[str, Any] = {"sent": result.sent, "deferred": result.deferred,
                                   "skipped": result.skipped}
            if args.send:
                delivered = {"sms": 0, "email": 0}
                if sender is not None:
                    while n := await sender.drain_once():
                        delivered["sms"] += n
                if cfg.email.configured:
                    mail = build_email_sender(lambda: cfg, db,
                                              await unsubscribe_secret(cfg, db))
                    try:
                        while n := await mail.drain_once():
                            delivered["email"] += n
                    finally:
                        await mail.transport.aclose()
                out["delivered"] = delivered
            if args.json:
                _print_json(out)
            else:
                print(f"sent {len(result.sent)}, deferred {len(result.deferred)}, "
                      f"skipped {len(result.skipped)}")
            return 0
        finally:
            if sender is not None:
                await sender.transport.aclose()
            await conversation.agent.aclose()  # type: ignore[attr-defined]

    return _run(args, body)


def _pause(args: argparse.Namespace, paused: bool) -> int:
    async def body(cfg: Config, db: SqlRepository) -> int:
        if not await db.set_campaign_paused(args.name, paused):
            return _error(f"no campaign named {args.name!r}", 1)
        if args.json:
            _print_json({"name": args.name, "paused": paused})
        else:
            print(f"{args.name} {'paused' if paused else 'resumed'}")
        return 0

    return _run(args, body)


def cmd_pause(args: argparse.Namespace) -> int:
    return _pause(args, True)


def cmd_resume(args: argparse.Namespace) -> int:
    return _pause(args, False)


def cmd_preview(args: argparse.Namespace) -> int:
    async def body(cfg: Config, db: SqlRepository) -> int:
        from sms.campaigns import service

        rows = await service.preview(db, args.name, args.lead,
                                     business_name=cfg.sms.business_name,
                                     booking_url=cfg.sms.booking_url)
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                head = f"touch {r['touch']} variant {r['variant']} ({r['channel']}, " \
                       f"+{r['delay']})"
                print(head)
                if "subject" in r:
                    print(f"  subject: {r['subject']}")
                print(f"  {r.get('body', r.get('error'))}")
        return 0

    return _run(args, body)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since else None
    except ValueError as exc:
        return _error(f"--since: {exc}")

    async def body(cfg: Config, db: SqlRepository) -> int:
        from sms.report import build_report, render_table

        report = await build_report(db, campaign=args.campaign, since=since,
                                    sms_segment_price=cfg.campaigns.sms_segment_price,
                                    email_price=cfg.campaigns.email_price)
        if args.json:
            _print_json(report)
        else:
            sys.stdout.write(render_table(report) + "\n")
        return 0

    return _run(args, body)
