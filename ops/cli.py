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
            print(f"[{section}]")
            for key, value in values.items():
                print(f"{key} = {msgspec.json.encode(value).decode()}")
            print()
    return 0


def _cmd_sim_call(args: argparse.Namespace) -> int:
    from ops.sim_cli import run_sim

    return run_sim(args)


def _cmd_bench_calls(args: argparse.Namespace) -> int:
    from ops.bench import run_bench

    return run_bench(args)


def _cmd_fake_realtime(args: argparse.Namespace) -> int:
    from ops.dev.fake_realtime import run

    return run(args)


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

    sim = sub.add_parser("sim", help="stand-ins for outside services")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    call = sim_sub.add_parser("call", help="place a simulated Twilio call against a server")
    call.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    call.add_argument("--from", dest="from_number", default="+15005550006")
    call.add_argument("--to", dest="to_number", default="+15005550001")
    what = call.add_mutually_exclusive_group()
    what.add_argument("--say", help="speak TEXT as the caller (local TTS)")
    what.add_argument("--wav", help="stream this WAV file as the caller")
    call.add_argument("--dtmf", default="", help="digits to press after speaking")
    call.add_argument("--record", help="write what the agent said to this WAV file")
    call.add_argument("--json", action="store_true", help="print the event timeline as JSON lines")
    call.add_argument("--auth-token", default=None,
                      help="sign requests like Twilio (default: $TWILIO_AUTH_TOKEN or config)")
    call.add_argument("--config", help="read the auth token from this config file")
    call.add_argument("--max-seconds", type=float, default=60.0, help="hang up after this long")
    call.set_defaults(func=_cmd_sim_call)

    bench = sub.add_parser("bench", help="load benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    calls = bench_sub.add_parser("calls", help="N concurrent simulated calls, one JSON line out")
    calls.add_argument("--url", default="http://127.0.0.1:8080")
    calls.add_argument("--calls", type=int, default=50)
    calls.add_argument("--seconds", type=float, default=30.0)
    calls.add_argument("--ramp-seconds", type=float, default=5.0,
                       help="spread call starts over this long")
    calls.add_argument("--auth-token", default=None)
    calls.set_defaults(func=_cmd_bench_calls)

    dev = sub.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    from ops.dev.fake_realtime import build_parser as fake_parser

    fake = fake_parser(dev_sub.add_parser("fake-realtime",
                                          help="run a fake OpenAI Realtime server"))
    fake.set_defaults(func=_cmd_fake_realtime)

    try:
        from ops.store_cli import register
    except ImportError:  # store tools not installed in this build
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
