#!/usr/bin/env bash
# Instructions per call per 20 ms tick of the server's media path, under callgrind.
#
#   benchmarks/media_instructions.sh [CALLS] [TICKS] [VAD]    (defaults: 100 250 webrtc)
#
# Runs `benchmarks/media_micro.py` twice under valgrind (TICKS and 0 ticks after
# the same warm-up) and divides the difference by CALLS × TICKS, so imports,
# eSpeak and model load cancel out. Instruction counts do not move with the
# machine's load, so an A/B of two versions of the code is meaningful on a busy
# machine. Takes a few minutes (valgrind runs Python ~50× slower).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-100}
ticks=${2:-250}
vad=${3:-webrtc}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    .venv/bin/python -m benchmarks.media_micro --calls "$calls" --ticks "$1" --vad "$vad" \
    2>&1 >"${TMPDIR:-/tmp}/media_micro_$1.json" | awk '/Collected :/ { print $NF }'
}
base=$(count 0)
full=$(count "$ticks")
python3 - "$calls" "$ticks" "$vad" "$base" "$full" "${TMPDIR:-/tmp}/media_micro_$ticks.json" <<'PY'
import json, sys
calls, ticks, vad, base, full, path = sys.argv[1:]
calls, ticks, base, full = int(calls), int(ticks), int(base), int(full)
fig = json.load(open(path))
print(json.dumps({"bench": "media_instructions", "calls": calls, "ticks": ticks, "vad": vad,
                  "instructions_per_call_tick": round((full - base) / calls / ticks),
                  "writes_per_call_s": fig["writes_per_call_s"],
                  "frames_out_per_call_s": fig["frames_out_per_call_s"],
                  "marks_echoed": fig["marks_echoed"], "barge_ins": fig["barge_ins"],
                  "underruns": fig["underruns"]}))
PY
