#!/usr/bin/env bash
# benchmarks/calls_with_server_metrics.sh N VAD: the calls bench, then the server-side
# end-of-turn and barge-in histograms from /metrics (bucket upper bounds of p50/p95/p99).
cd "$(dirname "$0")/.."
port=18500; token=bench-scrape
LEADLINE_SERVER_PORT=$port LEADLINE_SERVER_HOST=127.0.0.1 LEADLINE_VAD_ENGINE=$2 \
LEADLINE_TWILIO_AUTH_TOKEN=$token LEADLINE_LOG_LEVEL=WARNING \
  taskset -c 0 .venv/bin/leadline serve >"${TMPDIR:-/tmp}/leadline-metrics-srv.log" 2>&1 &
srv=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:$port/health >/dev/null && break; sleep 0.2; done
taskset -c 1 .venv/bin/leadline bench calls --url http://127.0.0.1:$port --calls $1 --seconds 30 --ramp-seconds 10 --auth-token $token
curl -s http://127.0.0.1:$port/metrics | grep -E "^leadline_(end_of_turn_seconds|barge_in_seconds)_(bucket|count|sum)" > "${TMPDIR:-/tmp}/leadline-metrics-$1-$2.prom"
kill $srv; wait $srv 2>/dev/null
python3 - "${TMPDIR:-/tmp}/leadline-metrics-$1-$2.prom" <<'PY'
import sys, re, collections
b = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m = re.match(r'(leadline_\w+?)_bucket\{le="([^"]+)"\} (\S+)', line)
    if m: b[m.group(1)].append((float('inf') if m.group(2)=='+Inf' else float(m.group(2)), float(m.group(3))))
for name, buckets in b.items():
    total = buckets[-1][1]
    out = {}
    for q in (0.5, 0.95, 0.99):
        for le, c in buckets:
            if c >= q * total: out[q] = le; break
    print(name, 'n=%d' % total, {k: ('<= %gms' % (v*1000)) for k, v in out.items()})
PY
