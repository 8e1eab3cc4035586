#!/usr/bin/env python3
"""The analyst work that ring-level cases and bulk actions save (P3.3), on a simulated world.

    python3 bench/work_saved.py [--seed 7] [--argus target/release/argus] [simulate options...]

Generates the world (`argus simulate -o`, with its truth stream), replays it through the graph
configuration with the starter and graph policies (`argus simulate --report --findings`), then counts
the analyst actions needed to resolve every attack account of the world:

- one case at a time: every attack account is its own case, claimed and given a verdict (2 actions);
- with ring cases and bulk: every ring the detectors found (a cluster or dense-block finding, keyed by
  its detector and first account as the server keys ring cases; findings of one ring are merged) whose
  accounts are mostly attack accounts is one case, claimed and banned in one verdict (2 actions); the
  attack accounts no such ring covers are handled one at a time (2 actions each).

Attack accounts are the actors of the truth stream's attack events (takeover victims included: each
needs a case). It also prints the honest accounts a ring ban would hit (the price of acting on rings),
and checks its premises: the truth and the findings cover the same world, and every finding's accounts
are accounts of the world.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--argus", default=os.path.join(ROOT, "target/release/argus"))
    ap.add_argument("--seed", default="7")
    ap.add_argument("--majority", type=float, default=0.5,
                    help="a ring is banned when more than this share of its accounts are attack accounts")
    args, extra = ap.parse_known_args()
    tmp = tempfile.mkdtemp()
    world = os.path.join(tmp, "world.ndjson")
    findings = os.path.join(tmp, "findings.ndjson")
    sim = [args.argus, "simulate", "--seed", args.seed, *extra]
    subprocess.run([*sim, "-o", world], check=True, cwd=ROOT)
    graph = ["--config", "examples/simulator/graph.toml", "--policies", "policies",
             "--policies", "examples/simulator/graph-policies"]
    subprocess.run([*sim, "--report", *graph, "--findings", findings], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)

    truth = os.path.join(tmp, "world.truth.ndjson")
    role_of = collections.defaultdict(set)
    scen_of = {}
    accounts = set()
    for line in open(truth):
        t = json.loads(line)
        accounts.add(t["actor"])
        if t["scenario"] != "honest":
            role_of[t["actor"]].add(t["role"])
            scen_of[t["actor"]] = t["scenario"]
    attack = set(role_of)
    honest = accounts - attack

    rings = {}
    n_findings = 0
    for line in open(findings):
        f = json.loads(line)
        n_findings += 1
        members = sorted(set(f["accounts"]))
        if not members:
            continue
        unknown = [m for m in members if m not in accounts]
        assert not unknown, f"finding {f['id']} names accounts outside the world: {unknown[:5]}"
        key = f"{f['detector']}:{members[0]}"
        rings.setdefault(key, set()).update(members)

    banned_rings = {k: m for k, m in rings.items() if len(m & attack) / len(m) > args.majority}
    covered = set().union(*banned_rings.values()) if banned_rings else set()
    covered_attack = covered & attack
    collateral = covered & honest
    one_at_a_time = 2 * len(attack)
    with_rings = 2 * len(banned_rings) + 2 * len(attack - covered_attack)
    by_scen = collections.Counter(scen_of[a] for a in covered_attack)
    out = {
        "seed": args.seed,
        "accounts": len(accounts),
        "attack_accounts": len(attack),
        "findings": n_findings,
        "rings": len(rings),
        "rings_banned": len(banned_rings),
        "attack_accounts_in_banned_rings": len(covered_attack),
        "honest_accounts_in_banned_rings": len(collateral),
        "covered_by_scenario": dict(sorted(by_scen.items())),
        "actions_one_case_at_a_time": one_at_a_time,
        "actions_with_ring_cases_and_bulk": with_rings,
        "actions_saved": one_at_a_time - with_rings,
        "ratio": round(one_at_a_time / with_rings, 3) if with_rings else None,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
