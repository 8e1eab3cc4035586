"""Review text on the simulator (P4.1): recall of a brushing ring's reviews at no more than 0.5 %
honest friction, naive (every scenario's camouflage 0: the rings post their templates as they are) and
camouflaged (camouflage 1: every ring review is a paraphrase: synonyms, dropped words, halves swapped,
an honest-looking sentence added), for the near-duplicate features and for a text classifier (Argus's
GBDT over the 64 hashed word n-gram features and the rest, `argus train --event review.create --label
review_fraud`, trained on the first 14 measured days, scored by `argus eval` on the rest).

For each world: `argus simulate --text`, `argus replay --config examples/simulator/text-graph.toml
--out-csv` (text.toml's features plus similarity edges in the entity graph: `graph_cluster_size`), then the review rows joined to the truth by event id. A score flags a review when it is at
least a threshold: the lowest threshold that flags at most 0.5 % of the honest reviews (warm-up days
left out) is chosen, and the share of ring reviews it flags is the recall.

Usage: python3 bench/text_dups.py [seed] [days] [users]   (builds nothing: target/release/argus)"""
import csv, json, os, subprocess, sys, tempfile

SEED, DAYS, USERS = (int(a) for a in (sys.argv[1:] + ["3", "28", "20000"][len(sys.argv) - 1:])[:3])
START = "2026-10-01"  # the simulator's default first measured day
TRAIN_DAYS = 14
A = "./target/release/argus"
SCORES = ["text_review_similar_accounts", "text_review_max_similarity", "text_review_words_similar_accounts", "text_review_words_max_similarity",
          # Similarity edges (examples/simulator/text-graph.toml): the reviewer's cluster of accounts linked by
          # near-duplicate reviews over the graph's 30 days.
          "graph_cluster_size"]
# Listings (`listing.create`, brushing sellers' copies of one shared listing kit against honest sellers'
# own descriptions): near-duplicates by other sellers within 30 days, and the seller's text cluster.
LISTING_SCORES = ["text_listing_similar_accounts", "text_listing_max_similarity", "graph_cluster_size"]


def world(camo, d):
    ev = os.path.join(d, f"w{camo}.ndjson")
    subprocess.run([A, "simulate", "--text", "--labels", "--seed", str(SEED), "--days", str(DAYS), "--users", str(USERS),
                    "--camouflage", str(camo), "-o", ev], check=True, capture_output=True)
    out = os.path.join(d, f"w{camo}.csv")
    subprocess.run([A, "replay", "-q", "--config", "examples/simulator/text-graph.toml", "--input", ev, "--out-csv", out],
                   check=True, capture_output=True)
    truth = {}
    for line in open(ev.replace(".ndjson", ".truth.ndjson")):
        t = json.loads(line)
        truth[t["id"]] = t
    rows, listings = [], []
    ids = set()
    for r in csv.DictReader(open(out)):
        if r["event_type"] not in ("review.create", "listing.create"):
            continue
        assert r["event_id"] not in ids, "an event id twice"
        ids.add(r["event_id"])
        t = truth[r["event_id"]]
        if t.get("warmup"):
            continue
        if r["event_type"] == "review.create":
            rows.append((t["scenario"], {s: float(r[s] or 0) for s in SCORES}))
        else:
            listings.append((t["scenario"], {s: float(r[s] or 0) for s in LISTING_SCORES}))
    return rows, listings, ev


def classifier(ev, d, camo, features):
    """A GBDT on `features` (empty: every number feature of review.create): trained on the first
    TRAIN_DAYS measured days (labels known an hour later), scored on the rest; (truth, score) rows."""
    tag = f"{camo}-{len(features)}"
    model, scores = os.path.join(d, f"m{tag}.json"), os.path.join(d, f"s{tag}.csv")
    common = ["--config", "examples/simulator/text.toml", "--input", ev, "--event", "review.create",
              "--label", "review_fraud", "--delay", "1h"]
    subprocess.run([A, "train", *common, "--train-from", START, "--train-days", str(TRAIN_DAYS), "--test-days", "0",
                    "--trees", "200", "--max-depth", "4", "--out", model,
                    *(["--features", ",".join(features)] if features else [])], check=True, capture_output=True)
    test_from = subprocess.run(["date", "-u", "-d", f"{START} {TRAIN_DAYS} days", "+%F"], capture_output=True,
                               text=True, check=True).stdout.strip()
    subprocess.run([A, "eval", *common, "--model", model, "--from", test_from, "--days", str(DAYS - TRAIN_DAYS),
                    "--scores", scores], check=True, capture_output=True)
    out = []
    for r in csv.DictReader(open(scores)):
        out.append(("brushing" if float(r["label"]) > 0 else "honest", {"classifier": float(r["score"])}))
    return out


def at_friction(rows, score, friction=0.005):
    honest = sorted((x[score] for s, x in rows if s == "honest"), reverse=True)
    ring = [x[score] for s, x in rows if s == "brushing"]  # reviews, or listings
    assert honest and ring, "no honest or no ring reviews"
    allowed = int(len(honest) * friction)
    # The lowest threshold above the (allowed+1)-th highest honest score flags at most `allowed`.
    cut = honest[allowed] if allowed < len(honest) else float("-inf")
    flagged_h = sum(1 for v in honest if v > cut)
    flagged_r = sum(1 for v in ring if v > cut)
    return cut, flagged_h / len(honest), flagged_r / len(ring), len(honest), len(ring)


print(f"== seed {SEED}, {DAYS} days, {USERS} users; argus {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}")
print("| world | score | flags when above | honest reviews | honest flagged | ring reviews | ring recall |")
print("|---|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as d:
    for camo, name in [(0, "naive (camouflage 0)"), (1, "paraphrased (camouflage 1)")]:
        rows, listings, ev = world(camo, d)
        for s in SCORES:
            cut, fh, rr, nh, nr = at_friction(rows, s)
            print(f"| {name} | {s} | {cut:g} | {nh} | {fh:.2%} | {nr} | {rr:.1%} |")
        for s in LISTING_SCORES:
            cut, fh, rr, nh, nr = at_friction(listings, s)
            print(f"| {name}, listings | {s} | {cut:g} | {nh} | {fh:.2%} | {nr} | {rr:.1%} |")
        hashed = [f"text_review_h{b}" for b in range(64)]
        for label, feats in [("text classifier: GBDT on the 64 hashed word n-grams", hashed),
                             ("GBDT on every feature (text, near-duplicates, behaviour)", [])]:
            crow = classifier(ev, d, camo, feats)
            cut, fh, rr, nh, nr = at_friction(crow, "classifier")
            print(f"| {name} | {label}, days {TRAIN_DAYS + 1}–{DAYS} | {cut:.4f} | {nh} | {fh:.2%} | {nr} | {rr:.1%} |")
