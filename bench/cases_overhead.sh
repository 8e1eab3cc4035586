#!/usr/bin/env bash
# What case intake costs the decision path (P3.3's target: ≤ 5 % of throughput): bench/serve.sh's
# saturation run with cases on (the default: review decisions open cases in SQLite) and off
# ([cases] enabled = false), alternating, ROUNDS times each (default 3). Prints each run's rate and the
# median ratio. Needs wrk (Debian's).
#
#   bench/cases_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
on=() off=()
for r in $(seq "$ROUNDS"); do
  for mode in on off; do
    out=$(CASES=$mode SAT_ONLY=1 DURATION=$DURATION bench/serve.sh 2>&1)
    rps=$(echo "$out" | awk '/== saturation/ { s = 1 } s && /^requests / { print $8; exit }')
    cases=$(echo "$out" | grep '^cases:' || echo "cases: -")
    echo "round $r cases=$mode: $rps decisions/s ($cases)"
    if [ "$mode" = on ]; then on+=("$rps"); else off+=("$rps"); fi
  done
done
python3 - "${on[*]}" "${off[*]}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
m_on, m_off = statistics.median(on), statistics.median(off)
print(f"median decisions/s: cases on {m_on:.0f}, off {m_off:.0f}; on/off = {m_on / m_off:.3f} "
      f"(cost {100 * (1 - m_on / m_off):+.1f} %)")
PY
