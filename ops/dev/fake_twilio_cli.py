"""`leadline dev fake-twilio`: argparse only (stdlib), the fake loads when it runs."""

from __future__ import annotations

import argparse


def _cmd(args: argparse.Namespace) -> int:
    import asyncio

    from ops.dev.fake_twilio import serve

    asyncio.run(serve(args.port, args.account_sid, args.auth_token, args.script))
    return 0


def register(dev_sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fake = dev_sub.add_parser(
        "fake-twilio", help="fake Twilio Calls API that plays the callee",
        description="Serve Twilio's Calls REST API and play each callee from a script: "
                    "signed status and AMD callbacks, a real Media Stream to the server.")
    fake.add_argument("--port", type=int, default=8003)
    fake.add_argument("--account-sid", default="AC" + "0" * 32)
    fake.add_argument("--auth-token", required=True,
                      help="signs the callbacks; must match twilio.auth_token")
    fake.add_argument("--script", help="callee.toml: [default] and [numbers.\"+1…\"] callees")
    fake.set_defaults(func=_cmd)
