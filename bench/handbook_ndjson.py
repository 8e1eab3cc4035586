#!/usr/bin/env python3
"""The Fraud Detection Handbook's transactions (CSV) as `argus serve` events (NDJSON), with the
columns examples/handbook/argus.toml maps: id, time (RFC 3339, UTC), actor, amount, terminal and the
delayed-label column fraud. TX_FRAUD_SCENARIO is left out, as the mapping leaves it out.

    bench/handbook_ndjson.py transactions.csv.gz out.ndjson"""
import csv, gzip, json, sys

src, dst = sys.argv[1], sys.argv[2]
opener = gzip.open if src.endswith(".gz") else open
n = 0
with opener(src, "rt", newline="") as f, open(dst, "w") as out:
    for r in csv.DictReader(f):
        out.write(json.dumps({
            "id": r["TRANSACTION_ID"],
            "type": "payment.attempt",
            "time": r["TX_DATETIME"].replace(" ", "T") + "Z",
            "actor": r["CUSTOMER_ID"],
            "data": {"amount": r["TX_AMOUNT"], "terminal": r["TERMINAL_ID"], "fraud": int(r["TX_FRAUD"])},
        }, separators=(",", ":")) + "\n")
        n += 1
print(n)
