#!/usr/bin/env python3
"""Compare Argus's handbook feature table with the pandas reference, column by column.

    python3 bench/compare_handbook.py target/handbook-argus.csv target/handbook-pandas.csv

Prints the max absolute difference and the number of rows differing by more than 1e-9 per feature, and
exits 1 when any exceeds 1e-9 (use --tolerance to change).
"""
import argparse
import sys

import pandas as pd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("argus")
    ap.add_argument("pandas")
    ap.add_argument("--tolerance", type=float, default=1e-9)
    ap.add_argument("--report-only", action="store_true", help="print the errors, never fail (bucketed windows)")
    a = ap.parse_args()
    x = pd.read_csv(a.argus).rename(columns={"event_id": "transaction_id"}).sort_values("transaction_id").reset_index(drop=True)
    y = pd.read_csv(a.pandas).sort_values("transaction_id").reset_index(drop=True)
    if len(x) != len(y) or (x["transaction_id"].to_numpy() != y["transaction_id"].to_numpy()).any():
        print(f"row sets differ: {len(x)} vs {len(y)}")
        sys.exit(1)
    bad = False
    print(f"{'feature':40s} {'max abs diff':>14s} {'mean abs diff':>14s} {'rows > tol':>11s}")
    for c in y.columns[1:]:
        d = (x[c] - y[c]).abs()
        n = int((d > a.tolerance).sum())
        bad |= n > 0
        print(f"{c:40s} {d.max():14.3e} {d.mean():14.3e} {n:11d}")
    print(f"rows compared: {len(y)}")
    if bad and not a.report_only:
        sys.exit(1)


if __name__ == "__main__":
    main()
