"""`leadline compliance check`: may we contact this number now, and if not, when?

    leadline compliance check --to NUMBER [--at ISO8601] [--channel sms|voice|email]
                              [--state XX] [--purpose P] [--config FILE] [--no-store]
    leadline compliance check --file F [--config FILE] [--no-store]

One JSON object per answer on stdout:
{"to", "at", "channel", "allowed", "reason", "zones", "next_allowed_at"}. `to` is E.164
when the number is valid, else as given; `at` the given time, normalised (UTC when it
has no offset); `next_allowed_at` ISO 8601 UTC or null.

`--file` reads TSV lines "number<TAB>at<TAB>channel[<TAB>state]" (blank lines and lines
starting with # are skipped; channel may be empty for sms) and answers every line,
exit 0: refusals are data there. An invalid number becomes reason "invalid_number", any
other unusable field reason "invalid_input" with an "error" key, and the run goes on.

A single check exits 0 when allowed, 3 when refused, 2 for bad input (message on stderr).
Opt-outs, the DNC list and the lead's recorded state come from the store named by
[store] database_url of --config, exactly as the sender sees them (the same gather
step, minus the audit entry: a check is not a send). `--no-store` answers from the
rules alone. Heavy imports stay inside the handler so `leadline --help` stays quick.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.compliance.engine import CompliancePolicy
    from store.database import Database

CHANNELS = ("sms", "voice", "email")
EXIT_OK, EXIT_BAD_INPUT, EXIT_REFUSED = 0, 2, 3


class BadInput(ValueError):
    """A field of the question cannot be used; the message says which and why."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    comp = subparsers.add_parser("compliance", help="contact rules: quiet hours, opt-outs, caps")
    comp_sub = comp.add_subparsers(dest="compliance_command", required=True)
    check = comp_sub.add_parser(
        "check", help="may we contact NUMBER at a time (JSON answer; exit 3 if refused)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = check.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", help="the number to contact (E.164, or US national)")
    what.add_argument("--file", help="TSV file of number, at, channel[, state] ('-' = stdin)")
    check.add_argument("--at", help="ISO 8601 time (UTC unless an offset is given; default now)")
    check.add_argument("--channel", choices=CHANNELS, default="sms")
    check.add_argument("--state", help="the lead's state (USPS code), else the stored lead's")
    check.add_argument("--purpose", default="marketing",
                       help="marketing (default), follow_up, conversation, help, …")
    check.add_argument("--config", default=None, help="TOML config ([compliance], [store])")
    check.add_argument("--no-store", action="store_true",
                       help="rules only: do not consult opt-outs, DNC or leads")
    check.set_defaults(func=cmd_check)


@dataclass(frozen=True, slots=True)
class _Question:
    to: str
    at: datetime
    channel: str
    state: str | None


def parse_at(raw: str | None, label: str = "--at") -> datetime:
    if raw is None or not raw.strip():
        return datetime.now(UTC).replace(microsecond=0)
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadInput(f"{label}: not an ISO 8601 time: {raw!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _answer(question: _Question, e164: str | None, decision: Any) -> dict[str, Any]:
    nxt = decision.next_allowed_at
    return {
        "to": e164 or question.to,
        "at": question.at.isoformat(),
        "channel": question.channel,
        "allowed": decision.allowed,
        "reason": decision.reason,
        "zones": list(decision.zones),
        "next_allowed_at": nxt.astimezone(UTC).isoformat() if nxt is not None else None,
    }


async def _decide(db: Database | None, question: _Question, purpose: str,
                  policy: CompliancePolicy) -> dict[str, Any]:
    from agents.compliance.engine import ContactRequest, decide
    from agents.compliance.gate import gather
    from store.phones import InvalidPhoneNumber, normalize_phone

    try:
        e164: str | None = normalize_phone(question.to)
    except InvalidPhoneNumber:
        e164 = None
    request = ContactRequest(phone=e164 or question.to, channel=question.channel,  # type: ignore[arg-type]
                             purpose=purpose, at=question.at, lead_state=question.state,
                             invalid=e164 is None)
    if db is not None:
        request = await gather(db, request)
    return _answer(question, e164, decide(request, policy))


def cmd_check(args: argparse.Namespace) -> int:
    import msgspec

    from agents.compliance.engine import CompliancePolicy
    from ops import config

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        return _error(str(exc))
    policy = CompliancePolicy.from_settings(cfg.compliance)

    if args.to is not None:
        from store.phones import InvalidPhoneNumber, normalize_phone

        try:
            at = parse_at(args.at)
            normalize_phone(args.to)
        except (BadInput, InvalidPhoneNumber) as exc:
            return _error(str(exc))
        question = _Question(args.to.strip(), at, args.channel, args.state)

        async def single(db: Database | None) -> int:
            answer = await _decide(db, question, args.purpose, policy)
            _emit(msgspec, answer)
            return EXIT_OK if answer["allowed"] else EXIT_REFUSED

        return _run(args, cfg.store.database_url, single)

    if args.at is not None or args.state is not None:
        return _error("--at and --state belong to --to; in --file they are columns")
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as exc:
        return _error(f"--file: {exc.strerror or exc}: {args.file}")

    async def batch(db: Database | None) -> int:
        with stream:
            for number, line in enumerate(stream, 1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                _emit(msgspec, await _file_line(db, number, line, args.purpose, policy))
        return EXIT_OK

    return _run(args, cfg.store.database_url, batch)


async def _file_line(db: Database | None, number: int, line: str, purpose: str,
                     policy: CompliancePolicy) -> dict[str, Any]:
    from store.phones import InvalidPhoneNumber, normalize_phone

    fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
    to = fields[0]
    raw_at = fields[1] if len(fields) > 1 else ""
    channel = (fields[2] if len(fields) > 2 else "") or "sms"
    state = (fields[3] if len(fields) > 3 else "") or None
    try:
        if len(fields) < 2 or len(fields) > 4:
            raise BadInput(f"expected 2 to 4 tab-separated fields, got {len(fields)}")
        if not raw_at:
            raise BadInput("the time column is empty")
        at = parse_at(raw_at, "time column")
        if channel not in CHANNELS:
            raise BadInput(f"channel must be one of {', '.join(CHANNELS)}: {channel!r}")
    except BadInput as exc:
        print(f"line {number}: {exc}", file=sys.stderr)
        return {"to": to, "at": raw_at, "channel": channel, "allowed": False,
                "reason": "invalid_input", "zones": [], "next_allowed_at": None,
                "error": str(exc)}
    question = _Question(to, at, channel, state)
    try:
        normalize_phone(to)
    except InvalidPhoneNumber:
        return {"to": to, "at": at.isoformat(), "channel": channel, "allowed": False,
                "reason": "invalid_number", "zones": [], "next_allowed_at": None}
    return await _decide(db, question, purpose, policy)


def _run(args: argparse.Namespace, url: str, body: Any) -> int:
    """Open the store (unless --no-store) the way the store commands do, run, close."""
    from store.errors import StoreError

    async def main() -> int:
        if args.no_store:
            return int(await body(None))
        from store.database import open_database

        if url.lower().startswith("sqlite:"):
            from store.sqlite import path_from_url

            path = path_from_url(url)
            if not await asyncio.to_thread(path.exists):
                # No database yet means no opt-out, DNC entry or lead was ever recorded:
                # the rules alone give the whole answer (and a check creates no file).
                return int(await body(None))
        db = await open_database(url, migrate=False)
        try:
            if await db.schema_version() == 0:
                return int(await body(None))
            return int(await body(db))
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except (BadInput, StoreError) as exc:
        return _error(str(exc))


def _emit(msgspec: Any, answer: dict[str, Any]) -> None:
    sys.stdout.write(msgspec.json.encode(answer).decode() + "\n")
    sys.stdout.flush()


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
