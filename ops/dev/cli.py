"""Command-line definitions of the dev tools: `sim call`, `bench calls`, `dev fake-realtime`.

Only argparse lives here, and only the standard library is imported at the top:
`leadline --help` and `leadline config show` build the whole parser tree, and
the tools behind these commands pull in aiohttp, picows, eSpeak and numpy
(about half a second). Each handler imports its tool when it runs.
"""

from __future__ import annotations

import argparse


def _cmd_sim_call(args: argparse.Namespace) -> int:
    from ops.dev.sim_cli import run_sim

    return run_sim(args)


def _cmd_bench_calls(args: argparse.Namespace) -> int:
    from ops.dev.bench import run_bench

    return run_bench(args)


def _cmd_bench_dial(args: argparse.Namespace) -> int:
    from ops.dev.dial_bench import run_bench

    return run_bench(args)


def _cmd_fake_realtime(args: argparse.Namespace) -> int:
    from ops.dev.fake_realtime import run

    return run(args)


def add_fake_realtime_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The fake Realtime server's options, shared by `leadline dev fake-realtime`
    and `python -m ops.dev.fake_realtime`."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--script", help="turn script, .toml or .json")
    parser.add_argument("--dump", help="write the received events to this file at exit")
    parser.add_argument("--no-emitted", action="store_true",
                        help="do not keep emitted events (long load tests)")
    return parser


def _add_sim(sub: argparse._SubParsersAction) -> None:
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


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="load benchmarks")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    calls = bench_sub.add_parser("calls", help="N concurrent simulated calls, one JSON line out")
    calls.add_argument("--url", default="http://127.0.0.1:8080")
    calls.add_argument("--calls", type=int, default=50)
    calls.add_argument("--seconds", type=float, default=30.0)
    calls.add_argument("--ramp-seconds", type=float, default=5.0,
                       help="spread call starts over this long")
    calls.add_argument("--auth-token", default=None,
                       help="sign requests like Twilio (default: $TWILIO_AUTH_TOKEN or config)")
    calls.add_argument("--config", help="read the auth token from this config file")
    calls.set_defaults(func=_cmd_bench_calls)
    dial = bench_sub.add_parser("dial", help="N call jobs through the dialer against the "
                                "fake callee, one JSON line out")
    dial.add_argument("--jobs", type=int, default=20)
    dial.add_argument("--concurrency", type=int, default=10)
    dial.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    dial.add_argument("--timeout-s", type=float, default=120.0)
    dial.add_argument("--callee", choices=("human", "busy"), default="human")
    dial.add_argument("--rate", type=float, default=10.0, help="jobs added per second (0: burst)")
    dial.add_argument("--database-url", default="", help="store (default: a temporary SQLite)")
    dial.add_argument("--twilio-process", action="store_true",
                      help="run the fake Twilio in its own process, as the real one is")
    dial.set_defaults(func=_cmd_bench_dial)


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `sim`, `bench` and `dev` to the `leadline` tree.

    Returns the `dev` subcommand group so further dev tools can join it
    (`register(...).add_parser("fake-x", ...)`) without a second `dev` parser.
    """
    _add_sim(sub)
    _add_bench(sub)
    dev = sub.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    fake = add_fake_realtime_arguments(
        dev_sub.add_parser("fake-realtime", help="run a fake OpenAI Realtime server",
                           description="Serve a fake OpenAI Realtime API (GA) for tests "
                                       "and load tests."))
    fake.set_defaults(func=_cmd_fake_realtime)
    return dev_sub
