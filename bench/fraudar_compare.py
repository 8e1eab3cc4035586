"""Argus's dense-block peeling against the original FRAUDAR code (pip: rgmining-fraudar), in one run.

Accuracy (FRAUDAR, KDD 2016, section 5): Bitcoin-OTC as a rater x ratee 0/1 matrix; inject a 100 x 100
block at each density with each camouflage (0 none, 1 random as many edges as the block, 2 twice that,
3 biased to popular columns), 10 seeds; both tools get the very same matrix. Reports, per cell, the
mean F-measure (users and items) of each and whether Argus found the reference's block and density.
Speed: one full peel on wiki-Vote and on a generated 2 M-edge bipartite graph, both tools.
Usage: python3 bench/fraudar_compare.py [SEEDS]"""
import json, os, random, subprocess, sys, tempfile, time
import numpy as np
from scipy import sparse
from fraudar.export import greedy

ARGUS = "./target/release/argus"
DATA = os.environ.get("ARGUS_DATA_DIR", "../shared/data") + "/graphs"
SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
import contextlib, io

def quiet(f, *a):
    with contextlib.redirect_stdout(io.StringIO()):
        return f(*a)

def inject(M, m0, n0, p, camo):
    """greedy.injectCliqueCamo, with the population as a list (random.sample needs a sequence)."""
    (m, n) = M.shape
    M2 = M.copy().tolil()
    colSum = np.squeeze(M2.sum(axis=0).A)
    population = list(np.repeat(np.arange(n0, n, 1), np.int_(colSum[n0:n]), axis=0))
    for i in range(m0):
        for j in range(n0):
            if random.random() < p:
                M2[i, j] = 1
        if camo in (1, 2):
            thres = camo * p * n0 / (n - n0)
            for j in range(n0, n):
                if random.random() < thres:
                    M2[i, j] = 1
        if camo == 3:
            M2[i, random.sample(population, int(n0 * p))] = 1
    return M2.tocsc()

def argus(M, weighting):
    rs, cs = M.nonzero()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for r, c in zip(rs, cs):
            f.write(f"{r} {c}\n")
        # Keep the shape: the last row and column exist even without edges.
        path = f.name
    out = subprocess.run([ARGUS, "rings", "--edges", path, "--weighting", weighting], capture_output=True, text=True, check=True)
    os.unlink(path)
    d = json.loads(out.stdout)
    b = d["blocks"][0]
    return (set(map(int, b["rows"])), set(map(int, b["cols"]))), b["density"], d["seconds"]

def matrix(path, sep, skip_comments=False):
    src, dst = [], []
    with open(path) as fh:
        for line in fh:
            if skip_comments and line.startswith("#"):
                continue
            t = line.replace(",", " ").split()
            src.append(int(t[0])); dst.append(int(t[1]))
    return greedy.listToSparseMatrix(src, dst)

otc = matrix(f"{DATA}/bitcoin-otc.csv", ",")
truth = (set(range(100)), set(range(100)))
print(f"Bitcoin-OTC: {otc.shape[0]} x {otc.shape[1]}, {otc.nnz} edges; 100 x 100 block, {SEEDS} seeds")
funcs = {"log": greedy.logWeightedAveDegree, "plain": greedy.aveDegree}
results = {}
for weighting, ref in funcs.items():
    print(f"== weighting: {weighting} — mean F-measure, Argus / reference (exact block and density matches)")
    print("  density   " + "".join(f"{'camo ' + str(c):>24}" for c in range(4)))
    for p in [0.05, 0.1, 0.2, 0.25, 0.3, 0.5]:
        cells = []
        for camo in range(4):
            fa, fr, same = [], [], 0
            for seed in range(SEEDS):
                random.seed(seed); np.random.seed(seed)
                M = inject(otc, 100, 100, p, camo)
                (rb, rdens) = quiet(ref, M)
                ab, adens, _ = argus(M, weighting)
                rb = (set(rb[0]), set(rb[1]))
                fr.append(greedy.getFMeasure(rb, truth)); fa.append(greedy.getFMeasure(ab, truth))
                same += int(ab == rb and abs(adens - float(rdens)) <= 1e-9 * max(1.0, abs(float(rdens))))
            cells.append((np.mean(fa), np.mean(fr), same))
            results[f"{weighting}/{p}/{camo}"] = {"argus_f": float(np.mean(fa)), "reference_f": float(np.mean(fr)), "exact_matches": same, "runs": SEEDS}
        print(f"  {p:<8}  " + "".join(f"{a:>9.3f} / {r:.3f} ({s:>2}/{SEEDS})" for a, r, s in cells))

print("== speed: one full peel, log weighting")
wiki = matrix(f"{DATA}/wiki-vote.txt", " ", skip_comments=True)
# 2,000,000 distinct edges between 200,000 rows and 100,000 long-tailed columns.
rng = np.random.default_rng(1)
rows = rng.integers(0, 200_000, 3_000_000); cols = (rng.zipf(1.5, 3_000_000) * 7919 + rng.integers(0, 100_000, 3_000_000) // 50) % 100_000
keys = np.unique(rows.astype(np.int64) * 100_000 + cols)
keys = rng.permutation(keys)[:2_000_000]
big = sparse.coo_matrix((np.ones(len(keys)), (keys // 100_000, keys % 100_000)), shape=(200_000, 100_000)).astype("int").tocsc()
for name, M in [("wiki-Vote", wiki), ("generated bipartite", big)]:
    t = time.perf_counter(); quiet(greedy.logWeightedAveDegree, M); ref_s = time.perf_counter() - t
    _, _, a_s = argus(M, "log")
    print(f"  {name:<20} {M.nnz:>9} edges: Argus {a_s:.3f} s ({M.nnz / a_s / 1e6:.2f} M edges/s), reference (Python) {ref_s:.2f} s ({M.nnz / ref_s / 1e6:.3f} M edges/s)")
json.dump(results, open("target/bench/fraudar.json", "w"), indent=1)
