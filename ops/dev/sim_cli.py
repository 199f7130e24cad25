"""`leadline sim call`: the Twilio stand-in, from the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import msgspec


def _auth_token(args: argparse.Namespace) -> str:
    if args.auth_token is not None:
        return args.auth_token
    from ops import config

    try:
        return config.load(args.config).twilio.auth_token
    except config.ConfigError:
        return os.environ.get("TWILIO_AUTH_TOKEN", "")


def run_sim(args: argparse.Namespace) -> int:
    from media.wavfile import WavError, read_ulaw
    from ops.dev.sim import SimOptions, sim_call

    audio = None
    try:
        if args.say:
            from agents.tts import synthesize_ulaw

            audio = synthesize_ulaw(args.say)
        elif args.wav:
            audio = read_ulaw(args.wav)
        options = SimOptions(
            url=args.url,
            from_number=args.from_number,
            to_number=args.to_number,
            audio=audio,
            dtmf=args.dtmf,
            record=args.record,
            auth_token=_auth_token(args),
            hangup_after_s=args.max_seconds,
            json_events=args.json,
        )
    except (WavError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(sim_call(options))
    except Exception as exc:  # connection refused, 403, bad TwiML: say so plainly
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    summary = {
        "event": "summary",
        "call_sid": result.call_sid,
        "agent_audio_ms": result.agent_audio_ms,
        "responses": result.responses,
        "marks_echoed": result.marks_echoed,
        "clears": result.clears,
        "underruns": result.underruns,
        "closed_by_server": result.closed_by_server,
        "protocol_errors": result.protocol_errors,
    }
    if args.json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        for key, value in summary.items():
            if key != "event":
                print(f"{key}: {value}")
        if args.record:
            print(f"recorded agent audio to {args.record}")
    return 0
