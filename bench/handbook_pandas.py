#!/usr/bin/env python3
"""Reference implementation of the Fraud Detection Handbook's 15 transaction features, "the pandas way".

This mirrors the handbook's chapter 3 feature-engineering code (Le Borgne et al., *Reproducible Machine
Learning for Credit Card Fraud Detection — Practical Handbook*, 2022): `groupby(...).apply(...)` with
time-based `rolling('<w>d')` windows per customer and per terminal, the terminal features computed as the
difference of a (delay + window) rolling window and a (delay) rolling window, as in the handbook's
`get_count_risk_rolling_window`. It is the baseline Argus's online feature computation is compared with.

Feature definitions (see ../shared/data/README.md), for a transaction at time t, customer c, terminal k:
  TX_DURING_WEEKEND = 1 if t is a Saturday or Sunday; TX_DURING_NIGHT = 1 if t's hour <= 6.
  CUSTOMER_ID_NB_TX_{w}DAY_WINDOW     = number of c's transactions with time in (t - w days, t] (current one
                                        included); CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW = their mean amount.
  TERMINAL_ID_NB_TX_{w}DAY_WINDOW     = number of k's transactions with time in (t - d - w, t - d], d = 7 days;
  TERMINAL_ID_RISK_{w}DAY_WINDOW      = frauds among those / that count (0 when the count is 0).
  w in {1, 7, 30}.

Ties on identical timestamps (what this script does about them):
  A time-based pandas rolling window evaluated at row i covers the rows j <= i (in the frame's order) with
  t_j in (t_i - w, t_i]. Rows that share t_i but come *after* row i are therefore left out, whereas the
  definition counts every transaction with time <= t. In the full data set there are 29 (customer, timestamp)
  pairs and 12 (terminal, timestamp) pairs with two transactions each (never three; never the same customer
  *and* terminal at once).
  * Customer features: after the rolling computation we overwrite every row of a (customer, timestamp) tie
    group with the values of the group's last row (in rolling order), which is the only row whose window
    already holds all of the tied transactions. This makes the output exactly match the definition; plain
    handbook code instead gives the first row of each pair a count one smaller (and a mean without the
    other transaction's amount).
  * Terminal features: no fix is needed. Window (t-d-w, t] minus window (t-d, t] is (t-d-w, t-d], and every
    transaction in it has time <= t - d < t, hence precedes row i; rows tied with row i fall in both
    windows (or neither) and cancel exactly in the subtraction.

Output: CSV with lowercase column names, sorted by transaction_id, floats with %.17g (round-trip exact).
stdout: one JSON line {"rows", "compute_secs", "total_secs", "events_per_sec"}; compute_secs covers the
feature computation only (not the CSV read with date parsing, not the CSV write). Diagnostics go to stderr.

--selfcheck N brute-forces N random rows (plus every row of a tie group) straight from the definitions,
using the integer TX_TIME_SECONDS column and exact float sums (math.fsum), and reports per column the
maximum absolute difference; it exits non-zero if a count differs or a float differs by more than 1e-9.

Usage (from the repository root):
  python3 bench/handbook_pandas.py                       # full file -> target/handbook-pandas.csv
  python3 bench/handbook_pandas.py --limit 200000 --output /tmp/h.csv --selfcheck 2000
"""

import argparse
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / ".." / "shared" / "data" / "fraud-handbook" / "transactions.csv.gz"
DEFAULT_OUTPUT = REPO_ROOT / "target" / "handbook-pandas.csv"

WINDOWS = [1, 7, 30]
DELAY = 7

OUT_COLUMNS = ["TRANSACTION_ID", "TX_DURING_WEEKEND", "TX_DURING_NIGHT"]
for _w in WINDOWS:
    OUT_COLUMNS += [f"CUSTOMER_ID_NB_TX_{_w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{_w}DAY_WINDOW"]
for _w in WINDOWS:
    OUT_COLUMNS += [f"TERMINAL_ID_NB_TX_{_w}DAY_WINDOW", f"TERMINAL_ID_RISK_{_w}DAY_WINDOW"]
COUNT_COLUMNS = [c for c in OUT_COLUMNS if "_NB_TX_" in c]
CUSTOMER_COLUMNS = [c for c in OUT_COLUMNS if c.startswith("CUSTOMER_ID_")]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# Handbook-style feature computation
# ---------------------------------------------------------------------------------------------------------

def get_customer_spending_behaviour_features(customer_transactions, windows_size_in_days=WINDOWS):
    """Per-customer rolling count and mean amount (handbook chapter 3.2, same structure)."""
    customer_transactions = customer_transactions.sort_values("TX_DATETIME", kind="stable")
    out = pd.DataFrame(index=customer_transactions.index)
    out["TX_DATETIME"] = customer_transactions["TX_DATETIME"]
    for window_size in windows_size_in_days:
        rolling = customer_transactions.rolling(str(window_size) + "D", on="TX_DATETIME")["TX_AMOUNT"]
        sum_amount_tx_window = rolling.sum()
        nb_tx_window = rolling.count()
        avg_amount_tx_window = sum_amount_tx_window / nb_tx_window
        out["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = nb_tx_window
        out["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = avg_amount_tx_window
    return out


def get_count_risk_rolling_window(terminal_transactions, delay_period=DELAY, windows_size_in_days=WINDOWS,
                                  feature="TERMINAL_ID"):
    """Per-terminal delayed count and fraud rate (handbook chapter 3.2, same structure)."""
    terminal_transactions = terminal_transactions.sort_values("TX_DATETIME", kind="stable")
    out = pd.DataFrame(index=terminal_transactions.index)
    rolling_delay = terminal_transactions.rolling(str(delay_period) + "D", on="TX_DATETIME")["TX_FRAUD"]
    nb_fraud_delay = rolling_delay.sum()
    nb_tx_delay = rolling_delay.count()
    for window_size in windows_size_in_days:
        rolling_dw = terminal_transactions.rolling(str(delay_period + window_size) + "D",
                                                   on="TX_DATETIME")["TX_FRAUD"]
        nb_fraud_delay_window = rolling_dw.sum()
        nb_tx_delay_window = rolling_dw.count()
        nb_fraud_window = nb_fraud_delay_window - nb_fraud_delay
        nb_tx_window = nb_tx_delay_window - nb_tx_delay
        risk_window = nb_fraud_window / nb_tx_window
        out[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = nb_tx_window
        out[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = risk_window
    out.fillna(0, inplace=True)  # 0/0 -> risk 0, as in the handbook
    return out


def compute_features(df, fix_ties=False):
    """df: raw transactions with TX_DATETIME parsed. Returns the output frame sorted by TRANSACTION_ID."""
    features = pd.DataFrame({"TRANSACTION_ID": df["TRANSACTION_ID"].to_numpy()}, index=df.index)
    features["TX_DURING_WEEKEND"] = (df["TX_DATETIME"].dt.day_of_week >= 5).astype(np.int64)
    features["TX_DURING_NIGHT"] = (df["TX_DATETIME"].dt.hour <= 6).astype(np.int64)

    base = df[["TX_DATETIME", "TX_AMOUNT", "TX_FRAUD"]]

    # Customers: rolling per customer, then the tie fix (see module docstring).
    cust = base.groupby(df["CUSTOMER_ID"], group_keys=False, sort=True).apply(
        get_customer_spending_behaviour_features)
    # `cust` is in rolling order (customer, then time, stably), so "last" of a tie group is the row whose
    # window holds all tied transactions.
    tie_keys = [df["CUSTOMER_ID"].reindex(cust.index).to_numpy(), cust["TX_DATETIME"].to_numpy()]
    if fix_ties:
        fixed = cust[CUSTOMER_COLUMNS].groupby(tie_keys, sort=False).transform("last")
        changed = int((fixed.to_numpy() != cust[CUSTOMER_COLUMNS].to_numpy()).any(axis=1).sum())
        log(f"tie fix: {changed} customer rows changed by the (customer, timestamp) tie fix")
        cust = fixed

    # Terminals: delay + window minus delay (no tie fix needed, see module docstring).
    term = base.groupby(df["TERMINAL_ID"], group_keys=False, sort=True).apply(get_count_risk_rolling_window)

    features = features.join(cust).join(term)
    for c in COUNT_COLUMNS:
        features[c] = features[c].astype(np.int64)
    features = features[OUT_COLUMNS].sort_values("TRANSACTION_ID", kind="stable").reset_index(drop=True)
    return features


# ---------------------------------------------------------------------------------------------------------
# Brute-force check straight from the definitions
# ---------------------------------------------------------------------------------------------------------

def selfcheck(df, features, n, seed):
    rng = np.random.default_rng(seed)
    n_rows = len(df)
    sample = set(rng.choice(n_rows, size=min(n, n_rows), replace=False).tolist()) if n > 0 else set()
    ties = (df.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False)
            | df.duplicated(["TERMINAL_ID", "TX_DATETIME"], keep=False))
    sample |= set(np.flatnonzero(ties.to_numpy()).tolist())
    sample = sorted(sample)

    ts = df["TX_TIME_SECONDS"].to_numpy()
    amount = df["TX_AMOUNT"].to_numpy()
    fraud = df["TX_FRAUD"].to_numpy()
    cust_idx = df.groupby("CUSTOMER_ID").indices
    term_idx = df.groupby("TERMINAL_ID").indices
    feat_by_id = features.set_index("TRANSACTION_ID")
    day = 86400

    max_diff = {c: 0.0 for c in OUT_COLUMNS[1:]}
    count_mismatches = 0
    for i in sample:
        row = df.iloc[i]
        t = int(ts[i])
        when = datetime.fromisoformat(str(row["TX_DATETIME"]))
        expect = {"TX_DURING_WEEKEND": int(when.weekday() >= 5), "TX_DURING_NIGHT": int(when.hour <= 6)}
        ci = cust_idx[row["CUSTOMER_ID"]]
        for w in WINDOWS:
            sel = ci[(ts[ci] > t - w * day) & (ts[ci] <= t)]
            expect[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = len(sel)
            expect[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = math.fsum(amount[sel]) / len(sel)
        ki = term_idx[row["TERMINAL_ID"]]
        for w in WINDOWS:
            sel = ki[(ts[ki] > t - (DELAY + w) * day) & (ts[ki] <= t - DELAY * day)]
            expect[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = len(sel)
            expect[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = (int(fraud[sel].sum()) / len(sel)) if len(sel) else 0.0
        got = feat_by_id.loc[int(row["TRANSACTION_ID"])]
        for c, e in expect.items():
            d = abs(float(got[c]) - float(e))
            max_diff[c] = max(max_diff[c], d)
            if (c in COUNT_COLUMNS or c.startswith("TX_")) and d != 0:
                count_mismatches += 1
    worst = max(max_diff.values())
    result = {"selfcheck_rows": len(sample), "tie_rows_included": int(ties.sum()),
              "count_mismatches": count_mismatches, "max_abs_diff": worst, "per_column": max_diff}
    ok = count_mismatches == 0 and worst <= 1e-9
    return result, ok


# ---------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=str(DEFAULT_INPUT), help="transactions.csv(.gz)")
    ap.add_argument("--output", default=str(DEFAULT_OUTPUT), help="output CSV (default target/handbook-pandas.csv)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ap.add_argument("--selfcheck", type=int, default=0, metavar="N",
                    help="brute-force N random rows (plus all tie rows) from the definitions")
    ap.add_argument("--ties", choices=["arrival", "definition"], default="arrival",
                    help="arrival (default): a row sees only rows before it in file order with time <= t, as the "
                         "handbook's own code and a streaming engine do; definition: tied rows see each other")
    ap.add_argument("--seed", type=int, default=0, help="seed for --selfcheck sampling")
    args = ap.parse_args()

    t0 = time.perf_counter()
    df = pd.read_csv(args.input, nrows=args.limit)
    df["TX_DATETIME"] = pd.to_datetime(df["TX_DATETIME"], format="%Y-%m-%d %H:%M:%S")
    t1 = time.perf_counter()
    log(f"read {len(df)} rows from {args.input} in {t1 - t0:.2f} s")

    if args.selfcheck and args.ties != "definition":
        ap.error("--selfcheck checks the data README's definitions: use it with --ties definition")
    features = compute_features(df, fix_ties=args.ties == "definition")
    t2 = time.perf_counter()
    log(f"features computed in {t2 - t1:.2f} s")

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    features.columns = [c.lower() for c in features.columns]
    features.to_csv(out, index=False, float_format="%.17g")
    features.columns = OUT_COLUMNS
    t3 = time.perf_counter()
    log(f"wrote {out} in {t3 - t2:.2f} s")

    rows = len(features)
    compute = t2 - t1
    print(json.dumps({"rows": rows, "compute_secs": round(compute, 3), "total_secs": round(t3 - t0, 3),
                      "events_per_sec": round(rows / compute, 1) if compute > 0 else None}), flush=True)

    if args.selfcheck:
        result, ok = selfcheck(df, features, args.selfcheck, args.seed)
        log("selfcheck: " + json.dumps(result))
        log("selfcheck " + ("PASSED" if ok else "FAILED"))
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
