#!/usr/bin/env python3
"""The Fraud Detection Handbook's 15 transaction features with Polars, from the raw CSV to the feature table.

A peer of `argus replay --config examples/handbook/argus.toml` for bench/handbook_peers.sh: same input
(the gzipped CSV), same features, same semantics as bench/handbook_pandas.py (default `--ties arrival`),
so that `python3 bench/compare_handbook.py <argus table> <this table>` passes at 1e-9.

Features, for a transaction at time t, customer c, terminal k (see bench/handbook_pandas.py):
  tx_amount; tx_during_weekend (Saturday or Sunday); tx_during_night (hour <= 6);
  customer_id_{nb_tx,avg_amount}_{w}day_window over c's transactions in (t - w, t];
  terminal_id_{nb_tx,risk}_{w}day_window over k's transactions in (t - 7d - w, t - 7d] (risk 0 when none).

Ties (two transactions of one customer in the same second, 29 pairs in the file): a streaming engine, and
pandas' rolling windows, let a row see the tied rows *before* it in file order, not those after it.
Polars' `rolling_*_by` lets every tied row see all of them. The customer windows therefore run over an
integer key `v = epoch_seconds * 1024 + k` (k = the row's rank among its customer's rows of the same second,
in file order) with an integer window of `w * 86400 * 1024 - 512`: exactly "t_j in (t - w, t], and tied rows
only up to this one". The terminal windows need nothing: (t - 7d - w, t] minus (t - 7d, t] counts every
row tied with this one in both windows, and they cancel.

Output: CSV, transaction_id then tx_amount and the 14 columns of bench/handbook_pandas.py (lowercase), in
file (= transaction_id) order. stdout: one JSON line {"rows", "read_secs", "compute_secs", "write_secs",
"total_secs", "threads"}. Polars uses every core it is given (POLARS_MAX_THREADS to restrict it).

  python3 bench/handbook_polars.py --output target/bench/handbook-polars.csv
"""

import argparse
import json
import time
from pathlib import Path

import polars as pl

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / ".." / "shared" / "data" / "fraud-handbook" / "transactions.csv.gz"
WINDOWS = [1, 7, 30]
DELAY = 7
DAY = 86400
TIE_SCALE = 1024  # ranks among same-second rows of one customer stay below TIE_SCALE / 2 (checked)


def features(df: pl.DataFrame) -> pl.DataFrame:
    ts = pl.col("TX_DATETIME")
    lf = df.lazy().with_columns(
        ts.str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us"),
        pl.lit(1, dtype=pl.Int64).alias("_one"),
    ).with_columns(
        (ts.dt.epoch("s") * TIE_SCALE + pl.int_range(pl.len(), dtype=pl.Int64).over("CUSTOMER_ID", "TX_DATETIME"))
        .alias("_v"),
    )
    cols = [
        pl.col("TRANSACTION_ID").alias("transaction_id"),
        pl.col("TX_AMOUNT").alias("tx_amount"),
        (ts.dt.weekday() >= 6).cast(pl.Int64).alias("tx_during_weekend"),
        (ts.dt.hour() <= 6).cast(pl.Int64).alias("tx_during_night"),
    ]
    for w in WINDOWS:
        size = f"{w * DAY * TIE_SCALE - TIE_SCALE // 2}i"
        n = pl.col("_one").rolling_sum_by("_v", window_size=size).over("CUSTOMER_ID")
        s = pl.col("TX_AMOUNT").rolling_sum_by("_v", window_size=size).over("CUSTOMER_ID")
        cols += [n.alias(f"customer_id_nb_tx_{w}day_window"), (s / n).alias(f"customer_id_avg_amount_{w}day_window")]
    n_delay = pl.col("_one").rolling_sum_by("TX_DATETIME", window_size=f"{DELAY}d").over("TERMINAL_ID")
    f_delay = pl.col("TX_FRAUD").rolling_sum_by("TX_DATETIME", window_size=f"{DELAY}d").over("TERMINAL_ID")
    for w in WINDOWS:
        n = pl.col("_one").rolling_sum_by("TX_DATETIME", window_size=f"{DELAY + w}d").over("TERMINAL_ID") - n_delay
        f = pl.col("TX_FRAUD").rolling_sum_by("TX_DATETIME", window_size=f"{DELAY + w}d").over("TERMINAL_ID") - f_delay
        cols += [n.alias(f"terminal_id_nb_tx_{w}day_window"),
                 pl.when(n > 0).then(f / n).otherwise(0.0).alias(f"terminal_id_risk_{w}day_window")]
    check = (pl.col("_v") % TIE_SCALE).max().alias("max_tie_rank")
    out, ties = pl.collect_all([lf.select(cols), lf.select(check)])
    assert ties["max_tie_rank"][0] < TIE_SCALE // 2, "too many same-second transactions of one customer"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=str(DEFAULT_INPUT), help="transactions.csv(.gz)")
    ap.add_argument("--output", default=str(REPO_ROOT / "target" / "bench" / "handbook-polars.csv"))
    a = ap.parse_args()
    t0 = time.perf_counter()
    df = pl.read_csv(a.input, columns=["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID",
                                        "TX_AMOUNT", "TX_FRAUD"])
    t1 = time.perf_counter()
    out = features(df)
    t2 = time.perf_counter()
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    out.write_csv(a.output)
    t3 = time.perf_counter()
    print(json.dumps({"rows": out.height, "read_secs": round(t1 - t0, 3), "compute_secs": round(t2 - t1, 3),
                      "write_secs": round(t3 - t2, 3), "total_secs": round(t3 - t0, 3),
                      "threads": pl.thread_pool_size(), "polars": pl.__version__}), flush=True)


if __name__ == "__main__":
    main()
