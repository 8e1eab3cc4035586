"""Parity fixtures for crates/argus_model/tests/parity.rs: trains XGBoost and LightGBM on the same
synthetic table (with missing values and exact zeros), saves each model in its native format, and writes
the libraries' own predictions for held-out rows. Usage: python3 parity.py OUT_DIR"""
import sys, os
import numpy as np
import xgboost as xgb
import lightgbm as lgb

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
n, f = 6000, 8
X = rng.normal(size=(n, f))
X[rng.random((n, f)) < 0.1] = np.nan          # missing values
X[rng.random((n, f)) < 0.05] = 0.0            # exact zeros (LightGBM's zero handling)
X[:, 3] = np.round(X[:, 3] * 4) / 4           # a feature with few distinct values (ties on thresholds)
logit = 1.5 * np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) ** 2 + 0.8 * np.isnan(X[:, 2]) + 0.5 * X[:, 3].clip(-2, 2)
y = (rng.random(n) < 1 / (1 + np.exp(-logit + 1.0))).astype(int)
train, test = slice(0, 5000), slice(5000, n)
names = [f"feat_{i}" for i in range(f)]

booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "seed": 1, "tree_method": "hist"},
                    xgb.DMatrix(X[train], label=y[train], feature_names=names), num_boost_round=60)
booster.save_model(os.path.join(out, "xgb.json"))
dtest = xgb.DMatrix(X[test], feature_names=names)
xp = booster.predict(dtest)
xm = booster.predict(dtest, output_margin=True)

model = lgb.train({"objective": "binary", "num_leaves": 24, "learning_rate": 0.1, "min_data_in_leaf": 10, "verbose": -1, "seed": 1},
                  lgb.Dataset(X[train], label=y[train], feature_name=names), num_boost_round=60)
model.save_model(os.path.join(out, "lgb.txt"))
lp = model.predict(X[test])
lm = model.predict(X[test], raw_score=True)

with open(os.path.join(out, "rows.csv"), "w") as fh:
    fh.write(",".join(names + ["xgb_prob", "xgb_margin", "lgb_prob", "lgb_margin"]) + "\n")
    for i, row in enumerate(X[test]):
        vals = ["nan" if np.isnan(v) else repr(float(v)) for v in row]
        vals += [repr(float(xp[i])), repr(float(xm[i])), repr(float(lp[i])), repr(float(lm[i]))]
        fh.write(",".join(vals) + "\n")
print(f"xgboost {xgb.__version__}, lightgbm {lgb.__version__}: {n - 5000} rows")
