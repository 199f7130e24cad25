#!/usr/bin/env bash
# Load bench: `leadline serve` pinned to one core, `leadline bench calls` on the other.
#
#   benchmarks/run_calls_bench.sh CALLS [SECONDS] [RAMP] [VAD]   (VAD: webrtc | silero)
#
# Prints the bench's JSON line on stdout. The server gets a fresh process per
# run (so RSS per call is measured from an idle baseline) and is stopped after.
# Env: PORT (default 18300), SERVER_CORE (0), GEN_CORE (1).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:?usage: run_calls_bench.sh CALLS [SECONDS] [RAMP] [VAD]}
seconds=${2:-30}
ramp=${3:-10}
vad=${4:-webrtc}
port=${PORT:-18300}
token=bench-$RANDOM$RANDOM

LEADLINE_SERVER_PORT=$port LEADLINE_SERVER_HOST=127.0.0.1 LEADLINE_VAD_ENGINE=$vad \
LEADLINE_TWILIO_AUTH_TOKEN=$token LEADLINE_LOG_LEVEL=WARNING \
  taskset -c "${SERVER_CORE:-0}" .venv/bin/leadline serve >"/tmp/leadline-bench-$port.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "/tmp/leadline-bench-$port.log" >&2; exit 1; }
  sleep 0.2
done

# Busy share of each core over the run, on stderr: more than server_cpu_cores on
# the server's core (or generator_cpu_cores on the other) means something else ran there.
core_ticks() { awk -v c="cpu$1" '$1 == c { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
read -r s0b s0t < <(core_ticks "${SERVER_CORE:-0}")
read -r g0b g0t < <(core_ticks "${GEN_CORE:-1}")
trap 'read -r s1b s1t < <(core_ticks "${SERVER_CORE:-0}"); read -r g1b g1t < <(core_ticks "${GEN_CORE:-1}")
      echo "core_busy server_core=$(awk "BEGIN{printf \"%.2f\", ($s1b-$s0b)/($s1t-$s0t)}") generator_core=$(awk "BEGIN{printf \"%.2f\", ($g1b-$g0b)/($g1t-$g0t)}")" >&2
      kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

taskset -c "${GEN_CORE:-1}" .venv/bin/leadline bench calls --url "http://127.0.0.1:$port" \
  --calls "$calls" --seconds "$seconds" --ramp-seconds "$ramp" --auth-token "$token"
