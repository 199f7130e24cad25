"""`leadline serve`: uvloop + aiohttp, one process for many calls."""

from __future__ import annotations

import asyncio
import logging
import sys

import uvloop
from aiohttp import web

from ops import config as config_mod
from ops import logs
from ops.app import build_app
from store.errors import StoreError

log = logging.getLogger("leadline.server")


def serve(config_path: str | None = None) -> int:
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log.level, cfg.log.format)
    if not cfg.twilio.validate_signatures:
        log.warning("Twilio signature validation is OFF (twilio.validate_signatures = false)")
    elif not cfg.twilio.auth_token:
        log.warning("no Twilio auth token set: every webhook will be refused with 403; set "
                    "TWILIO_AUTH_TOKEN, or twilio.validate_signatures = false for local use")
    app = build_app(cfg, config_path)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        web.run_app(app, host=cfg.server.host, port=cfg.server.port, print=None,
                    access_log=None, handle_signals=True)
    except StoreError as exc:  # e.g. PostgreSQL unreachable: say so, never fall back silently
        log.error("cannot start: %s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
