"""`leadline tokens create|revoke|list`: bearer tokens of the /v1 admin API.

    leadline tokens create --role admin|viewer [--label L] [--expires-days N] [--json]
    leadline tokens revoke ID
    leadline tokens list [--json]

The token is printed once, by `create`: the store keeps only its SHA-256, so a lost
token is revoked and replaced, never recovered. Tokens live in the store's database
(`[store] database_url` of `--config`, env overrides applied), so a server already
running accepts a new token at once and refuses a revoked one on its next request.
`create` brings the schema up to date first (the token table may be new).

Exit codes: 0 ok; 2 bad input (unknown role, no such token, bad config or database).
Only stdlib is imported here; the store loads inside the handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

ROLES = ("admin", "viewer")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tokens = subparsers.add_parser("tokens", help="bearer tokens of the /v1 admin API")
    sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = _common(sub.add_parser("create", help="make a token (printed once)"))
    create.add_argument("--role", required=True, choices=ROLES,
                        help="admin: read and write; viewer: read only")
    create.add_argument("--label", default=None, help="who or what the token is for")
    create.add_argument("--expires-days", type=float, default=None,
                        help="refuse the token after this many days (default: never)")
    create.set_defaults(func=cmd_create)
    revoke = _common(sub.add_parser("revoke", help="refuse a token from now on"))
    revoke.add_argument("id", type=int, help="the token's id (from create or list)")
    revoke.set_defaults(func=cmd_revoke)
    listing = _common(sub.add_parser("list", help="tokens with role and state (no secrets)"))
    listing.set_defaults(func=cmd_list)


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", default=None,
                        help="TOML config file to read [store] from (env overrides apply)")
    parser.add_argument("--database-url", default=None,
                        help="default: [store] database_url of --config")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _print_json(value: Any) -> None:
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> int:
    from ops import config as config_mod
    from store.database import open_database
    from store.errors import StoreError

    try:
        url = args.database_url or config_mod.load(args.config).store.database_url
    except config_mod.ConfigError as exc:
        return _error(str(exc))

    async def main() -> int:
        db = await open_database(url)
        try:
            return await body(db)
        finally:
            await db.close()

    try:
        return asyncio.run(main())
    except (StoreError, ValueError) as exc:
        return _error(str(exc))


def cmd_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    if args.expires_days is not None and not 0 < args.expires_days <= 3650:
        return _error("--expires-days must be more than 0 and at most 3650")
    expires = (None if args.expires_days is None
               else datetime.now(UTC) + timedelta(days=args.expires_days))

    async def body(db: Any) -> int:
        rec, token = await db.create_api_token(args.role, label=args.label,
                                               expires_at=expires)
        await db.audit("tokens", detail={"action": "create", "token_id": rec.id,
                                         "role": rec.role, "label": rec.label})
        if args.json:
            _print_json({"token": token, "id": rec.id, "role": rec.role})
        else:
            print(f"token {rec.id} ({rec.role}): {token}")
            print("store it now: it is not kept and cannot be shown again", file=sys.stderr)
        return 0

    return _run(args, body)


def cmd_revoke(args: argparse.Namespace) -> int:
    async def body(db: Any) -> int:
        if not await db.revoke_api_token(args.id):
            return _error(f"no usable token with id {args.id}")
        await db.audit("tokens", detail={"action": "revoke", "token_id": args.id})
        if args.json:
            _print_json({"id": args.id, "revoked": True})
        else:
            print(f"token {args.id} revoked")
        return 0

    return _run(args, body)


def cmd_list(args: argparse.Namespace) -> int:
    async def body(db: Any) -> int:
        import msgspec

        rows: list[Any] = []
        after = 0
        while True:
            page = await db.list_api_tokens(limit=1000, after_id=after)
            rows.extend(page.items)
            if page.next_after is None:
                break
            after = int(page.next_after)
        if args.json:
            _print_json({"items": [msgspec.to_builtins(t) for t in rows]})
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "role", "label", "created", "expires", "revoked", "last used")
        for t in rows:
            table.add_row(str(t.id), t.role, t.label or "", _when(t.created_at),
                          _when(t.expires_at), _when(t.revoked_at), _when(t.last_used_at))
        Console().print(table)
        return 0

    return _run(args, body)


def _when(at: Any) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M")
