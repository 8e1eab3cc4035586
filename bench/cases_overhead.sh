#!/usr/bin/env bash
# What case intake costs the decision path (P3.3's target: ≤ 5 % of throughput): bench/serve.sh's
# saturation run with cases on (the default: review decisions open cases in SQLite) and off
# ([cases] enabled = false), alternating, ROUNDS times each (default 3). Prints each run's rate and the
# median ratio. Needs wrk (Debian's). MODES="on off none" adds a configuration whose case route takes
# none of the decisions (bench/serve/argus-cases-none.toml): routing's own cost, and the guard's
# (cases on turn the blast-radius guard on); "noguard" is that configuration with the guard off
# (bench/serve/argus-cases-none-noguard.toml), so that the two can be told apart.
#
#   bench/cases_overhead.sh
#   MODES="on off none" bench/cases_overhead.sh
#   MODES="none noguard off" bench/cases_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
MODES=${MODES:-on off}
case " $MODES " in *" off "*) ;; *) echo "MODES must include off (every ratio is to it)" >&2; exit 1 ;; esac
on=() off=() none=() noguard=()
for r in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    out=$(CASES=$mode SAT_ONLY=1 DURATION=$DURATION bench/serve.sh 2>&1)
    rps=$(echo "$out" | awk '/== saturation/ { s = 1 } s && /^requests / { print $8; exit }')
    cases=$(echo "$out" | grep '^cases:' || echo "cases: -")
    echo "round $r cases=$mode: $rps decisions/s ($cases)"
    case $mode in on) on+=("$rps") ;; off) off+=("$rps") ;; none) none+=("$rps") ;; noguard) noguard+=("$rps") ;; esac
  done
done
python3 - "${on[*]:-}" "${off[*]}" "${none[*]:-}" "${noguard[*]:-}" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
none = [float(x) for x in sys.argv[3].split()]
noguard = [float(x) for x in sys.argv[4].split()]
m_off = statistics.median(off)
if on:
    m_on = statistics.median(on)
    print(f"median decisions/s: cases on {m_on:.0f}, off {m_off:.0f}; on/off = {m_on / m_off:.3f} "
          f"(cost {100 * (1 - m_on / m_off):+.1f} %)")
if none:
    m_none = statistics.median(none)
    print(f"median decisions/s with a route that takes nothing: {m_none:.0f}; none/off = {m_none / m_off:.3f} "
          f"(cost {100 * (1 - m_none / m_off):+.1f} %)")
if noguard:
    m_ng = statistics.median(noguard)
    print(f"median decisions/s with that route and the guard off: {m_ng:.0f}; noguard/off = {m_ng / m_off:.3f} "
          f"(cost {100 * (1 - m_ng / m_off):+.1f} %)")
for name, xs in (("on", on), ("none", none), ("noguard", noguard)):
    if xs and len(xs) == len(off):
        print(f"{name}/off by round: " + ", ".join(f"{a / b:.3f}" for a, b in zip(xs, off)))
PY
