"""Semi-supervised graph signals on the simulator (P4.1), time-ordered: every order of the measured
days is scored with its features as of that order, which hold only the labels that arrived before it
(`fraud.confirmed` for confirmed campaign accounts, 2 to 10 days after their last activity;
`legit.confirmed` for some honest buyers). An order is positive when the simulator's truth says an
attack made it.

Scores, each as a per-order ranking (ROC AUC, and precision among the k highest, ties shared):
- the `[graph.propagation]` features (examples/simulator/semi.toml);
- baselines: the actor's degree (its orders so far; oriented in its favour: fewer orders ranks riskier,
  since attack accounts are young), the dense-block score of graph.toml's buyer x
  seller block (`graph_orders_density`), and the shared-attribute cluster's fraud rate
  (`graph_cluster_fraud_rate`, the labels through devices, cards and addresses);
- a GBDT (`argus train`, default every number feature) trained on the first 14 measured days and
  scored by `argus eval` on the rest, with graph-labels.toml (the same graph without propagation) and
  with semi.toml: what the propagation features add to a model.

Usage: python3 bench/semi_sim.py [seed] [days] [users] [camouflage]   (builds nothing: target/release/argus)"""
import csv, json, os, subprocess, sys, tempfile

ARGS = (sys.argv[1:] + ["7", "28", "20000", "0.3"][len(sys.argv) - 1:])[:4]
SEED, DAYS, USERS, CAMO = int(ARGS[0]), int(ARGS[1]), int(ARGS[2]), ARGS[3]
START = "2026-10-01"  # the simulator's default first measured day
TRAIN_DAYS = 14
A = "./target/release/argus"
SEMI = ["graph_label_score", "graph_fraud_share", "graph_fraud_share_2hop", "graph_peer_label_score",
        "graph_peer_fraud_share", "graph_labelled_neighbors"]
BASE = ["degree", "graph_orders_density", "graph_cluster_fraud_rate"]
KS = [100, 1000]


def auc(pos, neg):
    """ROC AUC by ranks (ties get their average rank): 0.5 when every score is the same."""
    xs = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum, i = 0.0, 0
    while i < len(xs):
        j = i
        while j < len(xs) and xs[j][0] == xs[i][0]:
            j += 1
        r = (i + 1 + j) / 2  # average of ranks i+1 .. j
        rank_sum += r * sum(1 for k in range(i, j) if xs[k][1])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def precision_at(rows, k):
    """Positives among the k highest scores; the tied group at the cut counts by its share."""
    xs = sorted(rows, key=lambda r: -r[0])
    k = min(k, len(xs))
    cut = xs[k - 1][0]
    above = [y for v, y in xs if v > cut]
    tied = [y for v, y in xs if v == cut]
    return (sum(above) + (k - len(above)) * sum(tied) / len(tied)) / k


def report(name, rows):
    pos = [v for v, y in rows if y]
    neg = [v for v, y in rows if not y]
    assert pos and neg, f"{name}: no positive or no negative rows"
    ps = " | ".join(f"{precision_at(rows, k):.3f}" for k in KS)
    print(f"| {name} | {auc(pos, neg):.3f} | {ps} |")


def main():
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as d:
        ev = os.path.join(d, "w.ndjson")
        subprocess.run([A, "simulate", "--labels", "--seed", str(SEED), "--days", str(DAYS), "--users", str(USERS),
                        "--camouflage", CAMO, "-o", ev], check=True, capture_output=True)
        truth = {}
        labels = {"fraud.confirmed": 0, "legit.confirmed": 0}
        for line in open(ev.replace(".ndjson", ".truth.ndjson")):
            t = json.loads(line)
            truth[t["id"]] = t
        for line in open(ev):
            ty = json.loads(line)["type"]
            if ty in labels:
                labels[ty] += 1
        out = os.path.join(d, "f.csv")
        subprocess.run([A, "replay", "-q", "--config", "examples/simulator/semi.toml", "--input", ev, "--out-csv", out],
                       check=True, capture_output=True)
        degree, rows, ids = {}, [], set()
        for r in csv.DictReader(open(out)):
            if r["event_type"] != "order.create":
                continue
            assert r["event_id"] not in ids, "an event id twice"
            ids.add(r["event_id"])
            actor = truth[r["event_id"]]["actor"]
            degree[actor] = degree.get(actor, 0) + 1
            t = truth[r["event_id"]]
            if t.get("warmup"):
                continue
            x = {s: float(r[s] or 0) for s in SEMI + BASE if s != "degree"}
            x["degree"] = -degree[actor]
            rows.append((t["scenario"] != "honest", t["scenario"], x))
        npos = sum(1 for y, _, _ in rows if y)
        scen = {}
        for y, s, _ in rows:
            if y:
                scen[s] = scen.get(s, 0) + 1
        print(f"== seed {SEED}, {DAYS} days, {USERS} users, camouflage {CAMO}; argus {sha}")
        print(f"orders scored: {len(rows)}, attack orders: {npos} = {npos / len(rows):.3f} of them ({', '.join(f'{k} {v}' for k, v in sorted(scen.items()))}); "
              f"labels in the stream: {labels['fraud.confirmed']} fraud.confirmed, {labels['legit.confirmed']} legit.confirmed")
        print("| score (per order, features as of the order) | ROC AUC | " + " | ".join(f"precision@{k}" for k in KS) + " |")
        print("|---|---|" + "---|" * len(KS))
        for s in SEMI + BASE:
            report(s, [(x[s], y) for y, _, x in rows])
        # Per scenario: the label score's AUC for each attack's orders against the honest ones.
        neg = [x["graph_label_score"] for y, _, x in rows if not y]
        print()
        print("| attack | orders | graph_label_score AUC vs honest orders | degree AUC |")
        print("|---|---|---|---|")
        negd = [x["degree"] for y, _, x in rows if not y]
        for s in sorted(scen):
            pos = [x["graph_label_score"] for y, sc, x in rows if sc == s]
            posd = [x["degree"] for y, sc, x in rows if sc == s]
            print(f"| {s} | {len(pos)} | {auc(pos, neg):.3f} | {auc(posd, negd):.3f} |")
        print()
        test_from = subprocess.run(["date", "-u", "-d", f"{START} {TRAIN_DAYS} days", "+%F"], capture_output=True,
                                   text=True, check=True).stdout.strip()
        print(f"GBDT (`argus train`, every number feature, 200 trees of depth 4) trained on {START} + {TRAIN_DAYS} days, "
              f"scored from {test_from} to the end:")
        print("| model | ROC AUC | " + " | ".join(f"precision@{k}" for k in KS) + " |")
        print("|---|---|" + "---|" * len(KS))
        for name, cfg in [("GBDT, graph without propagation (graph-labels.toml)", "examples/simulator/graph-labels.toml"),
                          ("GBDT, graph with propagation (semi.toml)", "examples/simulator/semi.toml")]:
            model, scores = os.path.join(d, "m.json"), os.path.join(d, "s.csv")
            common = ["--config", cfg, "--input", ev, "--event", "order.create", "--label", "fraud"]
            subprocess.run([A, "train", *common, "--train-from", START, "--train-days", str(TRAIN_DAYS), "--test-days", "0",
                            "--trees", "200", "--max-depth", "4", "--out", model], check=True, capture_output=True)
            subprocess.run([A, "eval", *common, "--model", model, "--from", test_from, "--days", str(DAYS - TRAIN_DAYS),
                            "--scores", scores], check=True, capture_output=True)
            srows = [(float(r["score"]), float(r["label"]) > 0) for r in csv.DictReader(open(scores))]
            report(name, srows)


main()
