"""`leadline` command line: the server, ops tools, the Twilio stand-in and the load bench.

Subcommands import their modules lazily so `leadline config show` stays quick
and never loads ONNX or eSpeak.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_serve(args: argparse.Namespace) -> int:
    from ops.server import serve

    return serve(args.config)


def _cmd_config_show(args: argparse.Namespace) -> int:
    import msgspec

    from ops import config

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = config.masked(cfg)
    data["brain"]["effective_kind"] = cfg.brain_kind
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(data)).decode() + "\n")
    else:
        for section, values in data.items():
            # A list of tables ([[businesses]]) prints one table per entry.
            for table in values if isinstance(values, list) else [values]:
                print(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
                for key, value in table.items():
                    print(f"{key} = {msgspec.json.encode(value).decode()}")
                print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the media server")
    serve.add_argument("--config", help="TOML config file (env overrides still apply)")
    serve.set_defaults(func=_cmd_serve)

    cfg = sub.add_parser("config", help="inspect configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    show = cfg_sub.add_parser("show", help="print the effective config, secrets masked")
    show.add_argument("--config", help="TOML config file")
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML-ish")
    show.set_defaults(func=_cmd_config_show)

    # Dev tools (sim, bench, fakes): argparse only here, the tools load when run.
    from ops.dev.cli import register as register_dev

    dev_sub = register_dev(sub)
    from ops.dev.fake_llm_cli import register as register_fake_llm

    register_fake_llm(dev_sub)
    from ops.dev.fake_twilio_cli import register as register_fake_twilio

    register_fake_twilio(dev_sub)
    from ops.dialer_cli import register as register_dialer

    register_dialer(sub)

    try:
        from ops.store_cli import register
    except ImportError:  # store tools not installed in this build
        pass
    else:
        register(sub)
        from ops.leads_cli import register as register_leads

        register_leads(sub)
        from ops.compliance_cli import register as register_compliance

        register_compliance(sub)
        from ops.sms_cli import register as register_sms

        register_sms(sub)
        from ops.campaigns_cli import register as register_campaigns

        register_campaigns(sub)
        from ops.tokens_cli import register as register_tokens

        register_tokens(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
