"""How long choosing slots holds the event loop: `free_slots` + `propose` over the whole
horizon with a busy calendar. The tools run it on the loop that paces every call's audio,
so it must stay well under a 20 ms media tick.

    .venv/bin/python -m benchmarks.booking_slots [--busy 112] [--days 14] [--runs 200]

Prints one JSON line: mean and p99 milliseconds per proposal, the grid and free slot counts.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from agents.booking.core import Interval, Rules, free_slots, propose
from agents.booking.settings import BookingSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=112)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    rules = Rules.from_settings(BookingSettings(horizon_days=args.days), "America/New_York")
    now = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    busy = [Interval(now + timedelta(hours=3 * i), now + timedelta(hours=3 * i, minutes=45))
            for i in range(args.busy)]
    callee = ZoneInfo("America/Los_Angeles")
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        picks = propose(free_slots(rules, busy, now=now, callee=callee))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    every = free_slots(rules, busy, now=now, callee=callee, limit=100_000)
    print(json.dumps({
        "bench": "booking_slots", "busy": args.busy, "days": args.days, "runs": args.runs,
        "mean_ms": round(sum(times) / len(times), 3),
        "p99_ms": round(times[int(len(times) * 0.99) - 1], 3),
        "free_slots": len(every), "proposed": len(picks)}))


if __name__ == "__main__":
    main()
