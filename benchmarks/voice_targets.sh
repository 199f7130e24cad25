#!/usr/bin/env bash
# The voice targets of issue 11, as medians of RUNS runs per configuration:
#
#   benchmarks/voice_targets.sh [RUNS] [SECONDS] [RAMP]      (defaults: 3 30 10)
#
#   webrtc   500 calls, scripted brain            target: lag p99 < 20 ms, 0 underruns,
#   silero   300 calls, scripted brain                    0 drops, valid, barge-in p95 ≤ 150 ms
#   realtime 250 calls, OpenAI Realtime brain against `leadline dev fake-realtime`
#
# Each run is `benchmarks/run_calls_bench.sh` (fresh server on core 0, generator
# on core 1); every run's JSON line is kept in $OUT (default
# ${TMPDIR:-/tmp}/voice_targets.jsonl) and one JSON line of medians per
# configuration is printed on stdout. Run it on a quiet machine: `load_avg`
# in each line says how quiet it was. Env: CONFIGS (default "webrtc silero
# realtime") to run a subset, WEBRTC_CALLS / SILERO_CALLS / REALTIME_CALLS to
# change the sizes, and whatever run_calls_bench.sh reads (PERF=1, ports, cores).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
seconds=${2:-30}
ramp=${3:-10}
out=${OUT:-${TMPDIR:-/tmp}/voice_targets.jsonl}
: >"$out"
for config in ${CONFIGS:-webrtc silero realtime}; do
  case $config in
    webrtc) calls=${WEBRTC_CALLS:-500} vad=webrtc brain=scripted ;;
    silero) calls=${SILERO_CALLS:-300} vad=silero brain=scripted ;;
    realtime) calls=${REALTIME_CALLS:-250} vad=webrtc brain=realtime ;;
    *) echo "unknown config $config" >&2; exit 2 ;;
  esac
  for run in $(seq "$runs"); do
    line=$(BRAIN=$brain benchmarks/run_calls_bench.sh "$calls" "$seconds" "$ramp" "$vad") || {
      echo "$config run $run failed" >&2; continue; }
    echo "{\"config\":\"$config\",\"run\":$run,\"figures\":$line}" >>"$out"
    sleep 3  # let the ports and the kernel settle between runs
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = {}
for row in rows:
    by.setdefault(row["config"], []).append(row["figures"])

def dig(f, path):
    for p in path:
        f = f.get(p) if isinstance(f, dict) else None
    return f

def med(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None

for config, figs in by.items():
    get = lambda *path: [dig(f, path) for f in figs]
    print(json.dumps({
        "config": config, "runs": len(figs), "calls": figs[0]["calls"], "vad": figs[0]["vad"],
        "brain": figs[0].get("brain"),
        "server_cpu_cores": med(get("server_cpu_cores")),
        "server_user_cores": med(get("server_cpu", "user_cores")),
        "server_system_cores": med(get("server_cpu", "system_cores")),
        "server_user_ms_per_call_s": med(get("server_cpu", "user_ms_per_call_s")),
        "server_system_ms_per_call_s": med(get("server_cpu", "system_ms_per_call_s")),
        "lag_p99_ms": med(get("server_lag_ms", "p99")),
        "underruns": med(get("underruns")),
        "dropped_calls": med(get("dropped_calls")),
        "barge_in_p95_ms": med(get("barge_in_ms", "p95")),
        "end_of_turn_p99_ms": med(get("end_of_turn_ms", "p99")),
        "generator_cpu_cores": med(get("generator_cpu_cores")),
        "generator_send_lag_p99_ms": med(get("generator_send_lag_ms", "p99")),
        "server_writes_per_call_s": med(get("server_perf", "write_per_call_s")),
        "server_syscalls_per_call_s": med(get("server_perf", "syscalls_per_call_s")),
        "valid_runs": sum(bool(f["valid"]) for f in figs),
        "server_core_busy": med(get("core_busy", "server_core")),
        "load_avg_max": max(max(f.get("load_avg") or [0]) for f in figs),
    }, separators=(",", ":")))
PY
