#!/usr/bin/env python3
"""The Fraud Detection Handbook's 15 transaction features with DuckDB (SQL window functions), from the raw
CSV to the feature table.

A peer of `argus replay --config examples/handbook/argus.toml` for bench/handbook_peers.sh: same input
(the gzipped CSV), same features, same semantics as bench/handbook_pandas.py (default `--ties arrival`),
so that `python3 bench/compare_handbook.py <argus table> <this table>` passes at 1e-9.

Features, for a transaction at time t, customer c, terminal k (see bench/handbook_pandas.py):
  tx_amount; tx_during_weekend (Saturday or Sunday); tx_during_night (hour <= 6);
  customer_id_{nb_tx,avg_amount}_{w}day_window over c's transactions in (t - w, t];
  terminal_id_{nb_tx,risk}_{w}day_window over k's transactions in (t - 7d - w, t - 7d] (risk 0 when none).

The windows are `RANGE BETWEEN … PRECEDING` frames over integer epoch seconds `s` (timestamps are whole
seconds, so the open bound t - w is the closed bound t - w + 1 s):
  terminals: RANGE BETWEEN (7d + w - 1 s) PRECEDING AND 7d PRECEDING;
  customers: a streaming engine, and pandas' rolling windows, let a row see the rows of the same second
  *before* it in file order, not those after it (29 customer pairs in the file), whereas a RANGE frame
  ending at CURRENT ROW takes all peers. So the customer frames are ordered by `v = s * 1024 + k` (k = the
  row's rank among its customer's rows of that second, in file order = transaction_id order) over
  RANGE BETWEEN (w * 86400 * 1024 - 512) PRECEDING AND CURRENT ROW: exactly "s_j in (s - w, s], and tied
  rows only up to this one".

Output: CSV, transaction_id then tx_amount and the 14 columns of bench/handbook_pandas.py (lowercase),
ordered by transaction_id. stdout: one JSON line {"rows", "total_secs", "threads"}. DuckDB uses every core
(--threads to restrict it).

  python3 bench/handbook_duckdb.py --output target/bench/handbook-duckdb.csv
"""

import argparse
import json
import time
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / ".." / "shared" / "data" / "fraud-handbook" / "transactions.csv.gz"
WINDOWS = [1, 7, 30]
DELAY = 7
DAY = 86400
TIE_SCALE = 1024  # ranks among same-second rows of one customer stay below TIE_SCALE / 2 (checked)


def query(path: str) -> str:
    # The tie-rank check rides on the id column: a query error if a rank could reach the next second.
    sel = [f"CASE WHEN v % {TIE_SCALE} < {TIE_SCALE // 2} THEN TRANSACTION_ID "
           "ELSE error('too many same-second transactions of one customer') END AS transaction_id", "TX_AMOUNT AS tx_amount",
           "(dayofweek(ts) IN (0, 6))::BIGINT AS tx_during_weekend",  # 0 = Sunday, 6 = Saturday
           "(hour(ts) <= 6)::BIGINT AS tx_during_night"]
    windows = []
    for w in WINDOWS:
        sel += [f"count(*) OVER c{w} AS customer_id_nb_tx_{w}day_window",
                f"sum(TX_AMOUNT) OVER c{w} / count(*) OVER c{w} AS customer_id_avg_amount_{w}day_window"]
        windows.append(f"c{w} AS (PARTITION BY CUSTOMER_ID ORDER BY v "
                       f"RANGE BETWEEN {w * DAY * TIE_SCALE - TIE_SCALE // 2} PRECEDING AND CURRENT ROW)")
    for w in WINDOWS:
        sel += [f"count(*) OVER k{w} AS terminal_id_nb_tx_{w}day_window",
                f"coalesce(sum(TX_FRAUD) OVER k{w} / nullif(count(*) OVER k{w}, 0), 0)::DOUBLE "
                f"AS terminal_id_risk_{w}day_window"]
        windows.append(f"k{w} AS (PARTITION BY TERMINAL_ID ORDER BY s "
                       f"RANGE BETWEEN {(DELAY + w) * DAY - 1} PRECEDING AND {DELAY * DAY} PRECEDING)")
    return f"""
WITH raw AS (
  SELECT TRANSACTION_ID, TX_DATETIME AS ts, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD,
         epoch(TX_DATETIME)::BIGINT AS s
  FROM read_csv('{path}', header = true, timestampformat = '%Y-%m-%d %H:%M:%S',
                columns = {{'TRANSACTION_ID': 'BIGINT', 'TX_DATETIME': 'TIMESTAMP', 'CUSTOMER_ID': 'BIGINT',
                           'TERMINAL_ID': 'BIGINT', 'TX_AMOUNT': 'DOUBLE', 'TX_TIME_SECONDS': 'BIGINT',
                           'TX_TIME_DAYS': 'BIGINT', 'TX_FRAUD': 'BIGINT', 'TX_FRAUD_SCENARIO': 'BIGINT'}})
), ranked AS (
  SELECT *, s * {TIE_SCALE} + row_number() OVER (PARTITION BY CUSTOMER_ID, s ORDER BY TRANSACTION_ID) - 1 AS v
  FROM raw
)
SELECT {", ".join(sel)}
FROM ranked
WINDOW {", ".join(windows)}
ORDER BY transaction_id"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=str(DEFAULT_INPUT), help="transactions.csv(.gz)")
    ap.add_argument("--output", default=str(REPO_ROOT / "target" / "bench" / "handbook-duckdb.csv"))
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: every core)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    inp = str(a.input).replace("'", "''")
    out = str(a.output).replace("'", "''")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    rows = con.execute(f"COPY ({query(inp)}) TO '{out}' (HEADER, DELIMITER ',')").fetchone()[0]
    t1 = time.perf_counter()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(json.dumps({"rows": rows, "total_secs": round(t1 - t0, 3), "threads": threads,
                      "duckdb": duckdb.__version__}), flush=True)


if __name__ == "__main__":
    main()
