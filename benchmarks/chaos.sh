#!/usr/bin/env bash
# Faults under load (issue 11): own Redis + PostgreSQL + fakes, `leadline serve` under
# live calls, an SMS campaign and dial jobs; kill -9 Redis, restart and kill -9
# PostgreSQL, kill -9 the fake realtime server, kill -9 the server; one JSON report.
#   benchmarks/chaos.sh --calls 100 [--sms 40] [--jobs 30] [--keep]
# Exit 0 when nothing was lost or doubled, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m benchmarks.chaos.harness "$@"
