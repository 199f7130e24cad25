"""`leadline dialer run`: a dial-only process (the queue consumer without the media server).

The calls it places stream to, and call back, the `leadline serve` processes behind
`twilio.public_url`; this process holds the jobs (and their locks) and learns how each
call went from SQL. Only the standard library is imported at the top, so building the
CLI stays quick; the dialer loads when the command runs. Exit codes: 0 stopped by a
signal, 2 bad config or store.
"""

from __future__ import annotations

import argparse
import sys


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from ops import config, logs

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        return _error(str(exc))
    if not (cfg.twilio.account_sid and cfg.twilio.auth_token):
        return _error("the dialer needs twilio.account_sid and twilio.auth_token")
    if not cfg.twilio.public_url:
        return _error("the dialer needs twilio.public_url (where Twilio reaches leadline serve)")
    logs.setup(cfg.log.level, cfg.log.format)

    async def main() -> int:
        from store.database import open_database
        from store.errors import StoreError
        from telephony.dialer.service import DialerService

        try:
            db = await open_database(cfg.store.database_url)
        except (StoreError, ValueError) as exc:
            return _error(str(exc))
        service = DialerService(lambda: cfg.dialer, lambda: cfg.twilio,
                                lambda: cfg.compliance, lambda: db)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start_worker()
        print(f"dialer consuming {cfg.dialer.prefix}:{cfg.dialer.queue}", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
            await db.close()
        return 0

    return asyncio.run(main())


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dialer = sub.add_parser("dialer", help="the outbound call queue consumer")
    dialer_sub = dialer.add_subparsers(dest="dialer_command", required=True)
    run = dialer_sub.add_parser("run", help="consume call jobs without serving media")
    run.add_argument("--config", help="TOML config file (env overrides still apply)")
    run.set_defaults(func=_cmd_run)
