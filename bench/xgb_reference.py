"""XGBoost (Python, pip) on the very tables `argus train --export DIR` wrote: same rows, same features,
same split, same early stopping (validation logloss), same depth and learning rate. Prints one JSON line:
training seconds and test AUC / AP / CP@k with the handbook's protocol (the exported test rows already
leave out customers with a known fraud; CP@k also leaves out cards found on earlier test days).
Usage: python3 bench/xgb_reference.py DIR MAX_DEPTH LEARNING_RATE TREES [K]"""
import json, sys, time
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score, average_precision_score

d, depth, lr, trees = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
k = int(sys.argv[5]) if len(sys.argv) > 5 else 100
tr, va, te = (pd.read_csv(f"{d}/{n}.csv") for n in ("train", "valid", "test"))
cols = [c for c in tr.columns if c not in ("time_ms", "day", "actor", "label")]
start = time.perf_counter()
model = xgb.XGBClassifier(n_estimators=trees, max_depth=depth, learning_rate=lr, tree_method="hist", max_bin=255,
                          reg_lambda=1.0, min_child_weight=1.0, early_stopping_rounds=40, eval_metric="logloss",
                          n_jobs=1, random_state=0)
model.fit(tr[cols], tr.label, eval_set=[(va[cols], va.label)], verbose=False)
seconds = time.perf_counter() - start
p = model.predict_proba(te[cols])[:, 1]

def card_precision(df, k):
    detected, per_day = set(), []
    for day in sorted(df.day.unique()):
        g = df[(df.day == day) & (~df.actor.isin(detected))].groupby("actor").agg(score=("score", "max"), label=("label", "max"))
        top = g.sort_values(["score"], ascending=False, kind="stable").head(k)
        per_day.append(top.label.sum() / k)
        detected |= set(top[top.label == 1].index)
    return float(np.mean(per_day))

te = te.assign(score=p)
print(json.dumps({"library": f"xgboost {xgb.__version__}", "seconds": seconds, "trees": int(model.best_iteration) + 1,
                  "auc": roc_auc_score(te.label, p), "average_precision": average_precision_score(te.label, p),
                  "card_precision_at_k": card_precision(te, k), "threads": 1}))
