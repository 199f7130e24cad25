#!/usr/bin/env bash
# Load bench: `leadline serve` pinned to one core, `leadline bench calls` on the other.
#
#   benchmarks/run_calls_bench.sh CALLS [SECONDS] [RAMP] [VAD]   (VAD: webrtc | silero)
#
# Prints one JSON line on stdout: the bench's figures (server lag p50/p99,
# underruns, barge-in p50/p95, end of turn, drops, validity, server and
# generator CPU split into user and system) plus `core_busy` (busy share of
# each pinned core over the run, from /proc/stat: more than server_cpu_cores
# on the server's core means something else ran there), `load_avg` (the
# machine's 1-minute load at the start and end) and `brain_requested`.
# The server gets a fresh process per run (so RSS per call is measured from an
# idle baseline) and is stopped after.
# With PERF=1 (and `perf` installed), `server_perf` adds the server's syscalls,
# writes, reads, context switches and task-clock per call per second, counted by
# `perf stat -p` over the measuring window (from RAMP + 1 s, SECONDS − 2 s long):
# counts of events, unlike wall-clock figures, hardly move with the machine's load.
# Env: PORT (default 18300), SERVER_CORE (0), GEN_CORE (1),
#      BRAIN=scripted | realtime: realtime runs `leadline dev fake-realtime` on the
#      generator's core and points the OpenAI Realtime brain at it (config
#      `brain.kind = "openai"`, `openai.base_url`), so every call also holds a
#      second WebSocket, to the model.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:?usage: run_calls_bench.sh CALLS [SECONDS] [RAMP] [VAD]}
seconds=${2:-30}
ramp=${3:-10}
vad=${4:-webrtc}
port=${PORT:-18300}
brain=${BRAIN:-scripted}
token=bench-$RANDOM$RANDOM
log=${TMPDIR:-/tmp}/leadline-bench-$port.log
server_env=(LEADLINE_SERVER_PORT=$port LEADLINE_SERVER_HOST=127.0.0.1 LEADLINE_VAD_ENGINE=$vad
            LEADLINE_TWILIO_AUTH_TOKEN=$token LEADLINE_LOG_LEVEL=WARNING)
fake=""
if [ "$brain" = realtime ]; then
  fake_port=$((port + 10))
  taskset -c "${GEN_CORE:-1}" .venv/bin/leadline dev fake-realtime --port "$fake_port" \
    --no-emitted >"${TMPDIR:-/tmp}/leadline-fake-realtime-$fake_port.log" 2>&1 &
  fake=$!
  server_env+=(LEADLINE_BRAIN_KIND=openai LEADLINE_OPENAI_API_KEY=sk-bench
               LEADLINE_OPENAI_BASE_URL=ws://127.0.0.1:$fake_port/v1)
elif [ "$brain" != scripted ]; then
  echo "BRAIN must be scripted or realtime" >&2; exit 2
fi

env "${server_env[@]}" taskset -c "${SERVER_CORE:-0}" .venv/bin/leadline serve >"$log" 2>&1 &
server=$!
stop_all() {
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true
  if [ -n "$fake" ]; then kill "$fake" 2>/dev/null; wait "$fake" 2>/dev/null || true; fi
}
trap stop_all EXIT

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
if [ -n "$fake" ]; then
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$fake_port") 2>/dev/null && break
    sleep 0.2
  done
fi

core_ticks() { awk -v c="cpu$1" '$1 == c { print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }
load0=$(cut -d' ' -f1 /proc/loadavg)
read -r s0b s0t < <(core_ticks "${SERVER_CORE:-0}")
read -r g0b g0t < <(core_ticks "${GEN_CORE:-1}")

perf_out=${TMPDIR:-/tmp}/leadline-bench-perf-$port.csv
rm -f "$perf_out"
perf_window=$(awk -v s="$seconds" 'BEGIN { w = s - 2; print (w > 1 ? w : 1) }')
if [ "${PERF:-0}" = 1 ]; then
  (sleep "$(awk -v r="$ramp" 'BEGIN { print r + 1 }')"
   perf stat -x, -o "$perf_out" -p "$server" \
     -e raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev \
     -e syscalls:sys_enter_sendto,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom \
     -e syscalls:sys_enter_epoll_pwait,context-switches,task-clock -- sleep "$perf_window"
  ) >/dev/null 2>&1 &
  perf_job=$!
fi

out=$(taskset -c "${GEN_CORE:-1}" .venv/bin/leadline bench calls --url "http://127.0.0.1:$port" \
  --calls "$calls" --seconds "$seconds" --ramp-seconds "$ramp" --auth-token "$token")

read -r s1b s1t < <(core_ticks "${SERVER_CORE:-0}")
read -r g1b g1t < <(core_ticks "${GEN_CORE:-1}")
load1=$(cut -d' ' -f1 /proc/loadavg)
if [ -n "${perf_job:-}" ]; then wait "$perf_job" || true; fi  # the perf window
python3 - "$out" "$s0b" "$s0t" "$s1b" "$s1t" "$g0b" "$g0t" "$g1b" "$g1t" "$load0" "$load1" "$brain" \
  "$perf_out" "$perf_window" <<'PY'
import json, os, sys
fig = json.loads(sys.argv[1])
perf_out, window = sys.argv[13], float(sys.argv[14])
if os.path.exists(perf_out):
    per = {}
    for line in open(perf_out):
        parts = line.strip().split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue  # <not counted>
        name = parts[2].split(":")[-1].replace("sys_enter_", "").replace("sys_enter", "syscalls")
        per[name.replace("-", "_") + "_per_call_s"] = round(
            value / max(1, fig["calls_connected"]) / window, 3)
    if "task_clock_per_call_s" in per:  # msec of CPU per call per second
        per["task_clock_ms_per_call_s"] = per.pop("task_clock_per_call_s")
    fig["server_perf"] = per
s0b, s0t, s1b, s1t, g0b, g0t, g1b, g1t = map(float, sys.argv[2:10])
share = lambda b0, t0, b1, t1: round((b1 - b0) / (t1 - t0), 3) if t1 > t0 else None
fig["core_busy"] = {"server_core": share(s0b, s0t, s1b, s1t),
                    "generator_core": share(g0b, g0t, g1b, g1t)}
fig["load_avg"] = [float(sys.argv[10]), float(sys.argv[11])]
fig["brain_requested"] = sys.argv[12]  # `brain` is what the server's /health says
print(json.dumps(fig, separators=(",", ":")))
PY
