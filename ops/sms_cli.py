"""`leadline sms send`: one text from an operator, through compliance and the outbox.

    leadline sms send --to NUMBER --body TEXT [--purpose P] [--config FILE] [--json]

The default purpose is "marketing": an operator's one-off text is not a reply the
lead just asked for, so quiet hours and frequency caps hold it like a campaign
touch. `--purpose conversation` is for answering a lead who wrote within the
conversation window (compliance checks that; outside it the text is held like
marketing). The text is committed to the outbox first and then sent by this
process through the same sender the server runs (no server needs to be up); the
sender also delivers any other due rows it claims on the way, as the server would.

Exit codes: 0 sent; 1 not sent yet (Twilio failed it, or it is still retrying);
2 bad input (invalid number, no sender or credentials configured, bad config);
3 refused by policy (opt-out, DNC, quiet hours, caps). A text held by quiet hours
stays queued and goes out at `next_allowed_at` through a running server's sender.
Only stdlib is imported here; the store and SDK load inside the handler.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

OPERATOR_PURPOSES = ("marketing", "conversation", "transactional", "notification")
DEFAULT_WAIT_S = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sms = subparsers.add_parser("sms", help="text messages (Twilio)")
    sms_sub = sms.add_subparsers(dest="sms_command", required=True)
    send = sms_sub.add_parser("send", help="send one SMS through compliance and the outbox")
    send.add_argument("--to", required=True, help="recipient phone number")
    send.add_argument("--body", required=True, help="message text")
    send.add_argument("--purpose", choices=OPERATOR_PURPOSES, default="marketing",
                      help="why it is sent (default: marketing, held by quiet hours and caps)")
    send.add_argument("--config", default=None, help="TOML config file (env overrides apply)")
    send.add_argument("--wait-s", type=float, default=DEFAULT_WAIT_S,
                      help="how long to try to hand it to Twilio before giving up here")
    send.add_argument("--json", action="store_true", help="(the output is always JSON)")
    send.set_defaults(func=cmd_sms_send)


def _print(value: dict[str, Any]) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _bad(reason: str, detail: str) -> int:
    _print({"sent": False, "reason": reason, "error": detail})
    print(f"error: {detail}", file=sys.stderr)
    return 2


def cmd_sms_send(args: argparse.Namespace) -> int:
    import asyncio

    from ops import config as config_mod
    from store.phones import InvalidPhoneNumber, normalize_phone

    try:
        to = normalize_phone(args.to)
    except InvalidPhoneNumber as exc:
        return _bad("invalid_number", str(exc))
    try:
        cfg = config_mod.load(args.config)
    except config_mod.ConfigError as exc:
        return _bad("bad_config", str(exc))
    try:
        return asyncio.run(_send(cfg, to, args.body, args.purpose, args.wait_s))
    except Exception as exc:  # a store or SDK failure: say it, never a traceback
        from store.errors import StoreError

        if isinstance(exc, StoreError | ValueError):
            return _bad("error", str(exc))
        raise


async def _send(cfg: Any, to: str, body: str, purpose: str, wait_s: float) -> int:
    import asyncio
    import uuid

    from ops.messaging import build_parts
    from sms.conversation import NoSender
    from store.database import open_database

    db = await open_database(cfg.store.database_url)
    sender = None
    try:
        conversation, sender = build_parts(lambda: cfg, db)
        if sender is None:
            return _bad("no_credentials", "set twilio.account_sid and twilio.auth_token")
        try:
            queued = await conversation.send(to, body, purpose, f"cli:{uuid.uuid4().hex}")
        except NoSender as exc:
            return _bad("no_sender", str(exc))
        nxt = queued.next_allowed_at.isoformat() if queued.next_allowed_at else None
        if queued.state in ("refused", "deferred"):
            _print({"sent": False, "reason": queued.reason, "next_allowed_at": nxt,
                    "queued": queued.state == "deferred", "message_id": queued.message_id})
            return 3
        deadline = time.monotonic() + wait_s
        while True:
            claimed = await sender.drain_once()
            msg = next((m for m in await db.list_messages(to, limit=50)
                        if m.id == queued.message_id), None)
            if msg is None:
                return _bad("error", f"message {queued.message_id} vanished from the store")
            if msg.provider_sid or msg.status in ("failed", "cancelled"):
                break
            if time.monotonic() >= deadline:
                break
            if not claimed:
                await asyncio.sleep(0.25)
        if msg.provider_sid:
            _print({"sent": True, "message_id": msg.id, "provider_sid": msg.provider_sid,
                    "status": msg.status})
            return 0
        outcome = sender.stats.by_outcome
        _print({"sent": False, "message_id": msg.id, "status": msg.status,
                "error_code": msg.error_code,
                "reason": "failed" if msg.status == "failed" else
                ("cancelled at send time" if msg.status == "cancelled" else
                 f"still retrying after {wait_s:g} s ({outcome.get('retried', 0)} retries)")})
        return 3 if msg.status == "cancelled" else 1
    finally:
        if sender is not None:
            await sender.transport.aclose()
        await db.close()
