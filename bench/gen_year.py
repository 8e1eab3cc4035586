"""Generates the long-replay benchmark's input (bench/year.sh): N payments by U users at M merchants,
uniform over DAYS days from 2026-01-01, in time order, one CSV row each (id,time,user,merchant,amount).

    python3 bench/gen_year.py --days 365 --out target/bench/year.csv
"""
import argparse

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--days", type=int, required=True)
ap.add_argument("--events", type=int, default=2_000_000)
ap.add_argument("--users", type=int, default=400_000)
ap.add_argument("--merchants", type=int, default=20_000)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--out", required=True)
a = ap.parse_args()

rng = np.random.default_rng(a.seed)
start = np.datetime64("2026-01-01T00:00:00", "s")
secs = np.sort(rng.integers(0, a.days * 86_400, a.events))
times = np.datetime_as_string(start + secs.astype("timedelta64[s]"), unit="s")
users = rng.integers(0, a.users, a.events)
merchants = rng.integers(0, a.merchants, a.events)
cents = rng.integers(100, 50_000, a.events)
with open(a.out, "w") as f:
    f.write("id,time,user,merchant,amount\n")
    for i in range(0, a.events, 100_000):
        j = min(i + 100_000, a.events)
        f.write("".join(
            f"p{k},{times[k]}Z,u{users[k]},m{merchants[k]},{cents[k] // 100}.{cents[k] % 100:02d}\n"
            for k in range(i, j)
        ))
print(f"{a.events} events, {a.users} users, {a.merchants} merchants over {a.days} days -> {a.out}")
