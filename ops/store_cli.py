"""Store and NLU ops commands, mounted under `leadline` by ops/cli.py via `register`.

    leadline nlu name TEXT | --file F [--after-question]
    leadline nlu intent TEXT | --file F [--config FILE]
    leadline nlu triage TEXT | --file F [--industry I] [--config FILE]
    leadline nlu entities TEXT | --file F [--now ISO] [--zone Z] [--config FILE]
    leadline nlu ivr TEXT | --file F [--goal G]
    leadline db migrate | db backup PATH | db purge [--days N]
    leadline callers show NUMBER
    leadline calls list [--since ISO] [--limit N]
    leadline calls show CALL_SID  (with the call's analysis record, when it has one)
Every command takes `--json`; database commands take `--database-url`, else
`--config FILE` (its [store] database_url, env overrides applied, so
$LEADLINE_STORE_DATABASE_URL wins over the file), else the [store] default. Exit codes:
0 ok, 1 not found, 2 error (message on stderr). Store modules are imported
inside the handlers so the rest of the CLI stays quick to start.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.database import Database
    from store.models import Call
    from store.settings import StoreSettings

ENV_URL = "LEADLINE_STORE_DATABASE_URL"
ENV_RETENTION = "LEADLINE_STORE_RETENTION_DAYS"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    nlu = subparsers.add_parser("nlu", help="check the local language helpers")
    nlu_sub = nlu.add_subparsers(dest="nlu_command", required=True)
    name = nlu_sub.add_parser(
        "name", help='print {"name": …} found in TEXT (null when none); --file: {"text", "name"}')
    name.add_argument("text", nargs="?")
    name.add_argument("--file", help="one utterance per line, in order ('-': stdin)")
    name.add_argument("--after-question", action="store_true",
                      help="TEXT answers 'what is your name?' (a lone name counts)")
    name.add_argument("--json", action="store_true", help="(the output is always JSON)")
    name.set_defaults(func=cmd_nlu_name)
    intent = nlu_sub.add_parser(
        "intent", help='print {"text", "intent", "confidence"} per text, one JSON line each')
    intent.add_argument("text", nargs="?", help="one inbound message")
    intent.add_argument("--file", help="one message per line, in order ('-': stdin)")
    intent.add_argument("--config", default=None,
                        help="TOML config; with [sms] llm_base_url the LLM refines the rules")
    intent.add_argument("--json", action="store_true", help="(the output is always JSON)")
    intent.set_defaults(func=cmd_nlu_intent)
    triage = nlu_sub.add_parser(
        "triage", help='print {"text", "priority", "emergency", "life_safety", "category"} '
                       "per caller utterance, one JSON line each")
    triage.add_argument("text", nargs="?", help="one caller utterance")
    triage.add_argument("--file", help="one utterance per line, in order ('-': stdin)")
    triage.add_argument("--industry", default=None,
                        help="plumbing, hvac, electrical, medical, dental, legal or general "
                             "(default: [nlu] industry)")
    triage.add_argument("--config", default=None, help="TOML config to read [nlu] from")
    triage.add_argument("--json", action="store_true", help="(the output is always JSON)")
    triage.set_defaults(func=cmd_nlu_triage)
    ents = nlu_sub.add_parser(
        "entities", help='print {"text", "phones", "emails", "dates", "amounts", "addresses", '
                         '"names"} per caller utterance, one JSON line each')
    ents.add_argument("text", nargs="?", help="one caller utterance")
    ents.add_argument("--file", help="one utterance per line, in order ('-': stdin)")
    ents.add_argument("--now", default=None,
                      help="ISO time that relative dates count from (default: now)")
    ents.add_argument("--zone", default=None,
                      help="IANA zone of the business (default: [nlu] zone, else UTC)")
    ents.add_argument("--config", default=None, help="TOML config to read [nlu] from")
    ents.add_argument("--json", action="store_true", help="(the output is always JSON)")
    ents.set_defaults(func=cmd_nlu_entities)
    ivr = nlu_sub.add_parser(
        "ivr", help='print {"text", "digit", "reason"}: the key to press in a phone-tree menu')
    ivr.add_argument("text", nargs="?", help="the callee's transcript of one menu")
    ivr.add_argument("--file",
                     help="one menu per line, 'text<TAB>goal' (goal optional; '-': stdin)")
    ivr.add_argument("--goal", default=None,
                     help="who to reach: front desk (default), billing, sales, scheduling, …")
    ivr.add_argument("--json", action="store_true", help="(the output is always JSON)")
    ivr.set_defaults(func=cmd_nlu_ivr)

    db = subparsers.add_parser("db", help="the SQL store")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = _with_db(db_sub.add_parser("migrate", help="apply pending schema migrations"))
    migrate.set_defaults(func=cmd_db_migrate)
    backup = _with_db(db_sub.add_parser(
        "backup", help="online backup of the SQLite store (PostgreSQL: use pg_dump)"))
    backup.add_argument("path")
    backup.set_defaults(func=cmd_db_backup)
    purge = _with_db(db_sub.add_parser(
        "purge", help="delete turns and recordings of calls older than the retention"))
    purge.add_argument("--days", type=int, default=None,
                       help=f"default: ${ENV_RETENTION} or [store] retention_days")
    purge.set_defaults(func=cmd_db_purge)

    callers = subparsers.add_parser("callers", help="remembered callers")
    callers_sub = callers.add_subparsers(dest="callers_command", required=True)
    show_caller = _with_db(callers_sub.add_parser("show", help="one caller by phone number"))
    show_caller.add_argument("number")
    show_caller.set_defaults(func=cmd_callers_show)

    calls = subparsers.add_parser("calls", help="stored calls")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    listing = _with_db(calls_sub.add_parser("list", help="recent calls, newest first"))
    listing.add_argument("--since", help="ISO date or time (UTC unless an offset is given)")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_calls_list)
    show_call = _with_db(calls_sub.add_parser(
        "show", help="one call with its transcript and analysis"))
    show_call.add_argument("call_sid")
    show_call.set_defaults(func=cmd_calls_show)


def _with_db(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--database-url", default=None,
                        help=f"default: [store] database_url of --config (or ${ENV_URL})")
    parser.add_argument("--config", default=None,
                        help="TOML config file to read [store] from (env overrides apply)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


# handlers ---------------------------------------------------------------------


def cmd_nlu_name(args: argparse.Namespace) -> int:
    from agents.nlu.names import extract_name

    if args.file is None:
        if args.text is None:
            return _error("no text: give TEXT or --file with one utterance per line")
        _print_json({"name": extract_name(args.text, after_name_question=args.after_question)})
        return 0
    texts = _nlu_texts(args)
    if isinstance(texts, int):
        return texts
    for text in texts:
        _print_json({"text": text,
                     "name": extract_name(text, after_name_question=args.after_question)})
    return 0


def _nlu_texts(args: argparse.Namespace) -> list[str] | int:
    """TEXT or the lines of --file, or the exit code of the refusal (2, said on stderr)."""
    if args.file is not None:
        if args.text is not None:
            return _error("give TEXT or --file, not both")
        try:
            from pathlib import Path

            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _error(f"cannot read {args.file}: {exc}")
        texts = raw.splitlines()
    else:
        texts = [args.text] if args.text and args.text.strip() else []
    if not texts:
        return _error("no text: give TEXT or --file with one utterance per line")
    return texts


def _nlu_settings(args: argparse.Namespace) -> Any:
    """[nlu] of --config (env overrides applied), or the exit code of the refusal."""
    from ops import config

    try:
        return config.load(args.config).nlu
    except config.ConfigError as exc:
        return _error(str(exc))


def cmd_nlu_triage(args: argparse.Namespace) -> int:
    """Rules only (agents/nlu/triage.toml); exit 2 for no text or an unknown industry."""
    texts = _nlu_texts(args)
    if isinstance(texts, int):
        return texts
    nlu = _nlu_settings(args)
    if isinstance(nlu, int):
        return nlu
    from agents.nlu.triage import triage

    industry = args.industry if args.industry is not None else nlu.industry
    try:
        results = [triage(text, industry=industry) for text in texts]
    except ValueError as exc:
        return _error(str(exc))
    for r in results:
        _print_json({"text": r.text, "priority": r.priority, "emergency": r.emergency,
                     "life_safety": r.life_safety, "category": r.category})
    return 0


def cmd_nlu_entities(args: argparse.Namespace) -> int:
    """Exit 2 for no text, an unreadable file, a bad --now or an unknown --zone."""
    texts = _nlu_texts(args)
    if isinstance(texts, int):
        return texts
    nlu = _nlu_settings(args)
    if isinstance(nlu, int):
        return nlu
    now = None
    if args.now is not None:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            return _error(f"--now {args.now!r} is not an ISO 8601 time")
    from agents.nlu.entities import extract_entities

    zone = args.zone if args.zone is not None else nlu.zone
    try:
        results = [extract_entities(text, now=now, zone=zone) for text in texts]
    except ValueError as exc:
        return _error(str(exc))
    for r in results:
        _print_json(r)
    return 0


def cmd_nlu_ivr(args: argparse.Namespace) -> int:
    """Rules only (agents/nlu/ivr.toml); exit 2 for no text or an unreadable file."""
    texts = _nlu_texts(args)
    if isinstance(texts, int):
        return texts
    from agents.nlu.ivr import ivr_choice

    for line in texts:
        text, _, goal = line.partition("\t") if args.file is not None else (line, "", "")
        _print_json(ivr_choice(text, goal.strip() or args.goal))
    return 0


def cmd_nlu_intent(args: argparse.Namespace) -> int:
    """Rules only, unless [sms] llm_base_url is set: then the chat agent's own LLM path."""
    import asyncio
    if args.file is not None:
        if args.text is not None:
            return _error("give TEXT or --file, not both")
        try:
            from pathlib import Path

            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _error(f"cannot read {args.file}: {exc}")
        texts = raw.splitlines()
    else:
        texts = [args.text] if args.text and args.text.strip() else []
    if not texts:
        return _error("no text: give TEXT or --file with one message per line")
    from ops import config

    try:
        sms = config.load(args.config).sms
    except config.ConfigError as exc:
        return _error(str(exc))

    async def classify() -> list[tuple[str, float]]:
        from agents.chat.agent import BusinessInfo, ChatAgent, LeadView
        from agents.chat.llm import client_from_settings
        from store.models import utcnow

        client = client_from_settings(sms)
        agent = ChatAgent(sms, client, utcnow)
        business = BusinessInfo(name=sms.business_name, facts=sms.facts,
                                booking_url=sms.booking_url)
        try:
            return [((d := await agent.decide(business, LeadView(), [], text)).intent,
                     d.confidence) for text in texts]
        finally:
            if client is not None:
                await client.close()

    if sms.llm_base_url:
        results = asyncio.run(classify())
    else:
        from agents.nlu.intents import classify_intent

        results = [(r.intent, r.confidence) for r in map(classify_intent, texts)]
    for text, (intent, confidence) in zip(texts, results, strict=True):
        _print_json({"text": text, "intent": intent, "confidence": confidence})
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    async def run(db: Database) -> int:
        applied = await db.migrate()
        version = await db.schema_version()
        if args.json:
            _print_json({"applied": applied, "version": version, "backend": db.backend})
        else:
            done = "applied " + ", ".join(map(str, applied)) if applied else "nothing to apply"
            print(f"{db.backend}: schema at version {version} ({done})")
        return 0

    return _with_database(args, run, migrate=False, must_exist=False)


def cmd_db_backup(args: argparse.Namespace) -> int:
    async def run(db: Database) -> int:
        await db.backup(args.path)
        if args.json:
            _print_json({"backup": args.path})
        else:
            print(f"backed up to {args.path}")
        return 0

    return _with_database(args, run)


def cmd_db_purge(args: argparse.Namespace) -> int:
    import asyncio
    try:
        days = args.days if args.days is not None else _store_settings(args).retention_days
    except ValueError as exc:  # ConfigError
        return _error(str(exc))
    if days <= 0:
        if args.json:
            _print_json({"turns": 0, "recordings": 0})
        else:
            print("retention is off (retention_days = 0): nothing purged")
        return 0

    async def run(db: Database) -> int:
        counts = await db.purge_older_than(days)
        removed = await asyncio.to_thread(_remove_files, counts.recordings)
        if args.json:
            _print_json({"turns": counts.turns, "recordings": removed})
        else:
            print(f"purged {counts.turns} turns and {removed} recordings older than {days} days")
        return 0

    return _with_database(args, run)


def cmd_callers_show(args: argparse.Namespace) -> int:
    async def run(db: Database) -> int:
        caller = await db.get_caller(args.number)
        if caller is None:
            return _not_found(args, f"no caller {args.number}")
        if args.json:
            _print_json(caller)
        else:
            print(f"{caller.phone}  {caller.name or '(name unknown)'}")
            print(f"  calls {caller.call_count}, first seen {_when(caller.first_seen)},"
                  f" last seen {_when(caller.last_seen)}")
        return 0

    return _with_database(args, run)


def cmd_calls_list(args: argparse.Namespace) -> int:
    try:
        since = _parse_since(args.since) if args.since else None
    except ValueError as exc:
        return _error(f"--since: {exc}")

    async def run(db: Database) -> int:
        calls = await db.list_calls(since=since, limit=args.limit)
        if args.json:
            _print_json(calls)
        else:
            for call in calls:
                print(_call_line(call))
            if not calls:
                print("no calls")
        return 0

    return _with_database(args, run)


def cmd_calls_show(args: argparse.Namespace) -> int:
    async def run(db: Database) -> int:
        detail = await db.get_call(args.call_sid)
        if detail is None:
            return _not_found(args, f"no call {args.call_sid}")
        analysis = await db.get_call_analysis(args.call_sid)  # type: ignore[attr-defined]
        if args.json:
            import msgspec

            _print_json({**msgspec.to_builtins(detail), "analysis": analysis})
            return 0
        call = detail.call
        print(_call_line(call))
        extra = [f"brain {call.brain}"] if call.brain else []
        extra.append(f"tokens in {call.input_tokens} / out {call.output_tokens}")
        if call.recording_path:
            extra.append(f"recording {call.recording_path}")
        print("  " + ", ".join(extra))
        for turn in detail.turns:
            print(f"  [{turn.started_at.strftime('%H:%M:%S')}] {turn.role}: {turn.text}")
        if not detail.turns:
            print("  (no transcript)")
        if analysis is not None:
            rec = analysis.record
            verdict = "success" if analysis.success else "not a success"
            lead = ", new lead" if analysis.new_lead else ""
            print(f"  analysis: {analysis.outcome}, {verdict} ({rec.get('success_reason', '')})"
                  f", priority {analysis.priority}{lead}")
            if rec.get("caller_name"):
                print(f"  caller: {rec['caller_name']}")
            print(f"  summary ({rec.get('summary_source', '')}): {analysis.summary}")
            for field, answer in (rec.get("answers") or {}).items():
                said = "(declined)" if answer.get("refused") else answer.get("answer", "")
                print(f"  answer {field}: {said}")
        return 0

    return _with_database(args, run)


# plumbing --------------------------------------------------------------------


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    return _store_settings(args).database_url


def _store_settings(args: argparse.Namespace) -> StoreSettings:
    """[store] as the server would see it: defaults ← --config file ← environment.

    Raises ConfigError (a ValueError) naming the bad file or key.
    """
    from ops import config

    return config.load(getattr(args, "config", None)).store


def _with_database(
    args: argparse.Namespace,
    run: Callable[[Database], Awaitable[int]],
    *,
    migrate: bool = False,
    must_exist: bool = True,
) -> int:
    """Open the store, run one command, close; store errors become exit code 2."""
    import asyncio

    from store.database import open_database
    from store.errors import StoreError

    try:
        url = _database_url(args)
    except ValueError as exc:  # ConfigError
        return _error(str(exc))

    async def main() -> int:
        if must_exist and url.lower().startswith("sqlite:"):
            from store.sqlite import path_from_url

            path = path_from_url(url)
            if not await asyncio.to_thread(path.exists):
                return _error(f"no database at {path} (run `leadline db migrate` to create it)")
        db = await open_database(url, migrate=migrate)
        try:
            if must_exist and await db.schema_version() == 0:
                return _error("database has no schema yet: run `leadline db migrate`")
            return await run(db)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except (StoreError, ValueError) as exc:  # InvalidPhoneNumber is a ValueError
        return _error(str(exc))


def _parse_since(raw: str) -> datetime:
    at = datetime.fromisoformat(raw)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _remove_files(paths: list[str]) -> int:
    removed = 0
    for path in paths:
        try:
            os.remove(path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def _call_line(call: Call) -> str:
    outcome = f" → {call.outcome}" if call.outcome else ""
    return (f"{_when(call.started_at)}  {call.call_sid}  {call.direction:<8} "
            f"{call.from_number or '?'} → {call.to_number or '?'}  {call.status}{outcome}")


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_json(value: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _not_found(args: argparse.Namespace, message: str) -> int:
    if args.json:
        _print_json(None)
    print(message, file=sys.stderr)
    return 1


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
