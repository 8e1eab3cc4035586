"""Generates the onboarding walk-through's data set (docs/onboarding.md): a shop's card payments over
DAYS days from 2026-01-01, in time order, one CSV row each, and its merchants' categories.

    python3 examples/onboarding/gen_shop.py --out-dir target/onboarding

payments.csv: id,time,user,card_bin,merchant,amount,disputed
  `disputed` is 1 when the payment was later disputed as fraud (known about a week afterwards), 0 when
  not. About 2 % of users are fraudsters: they pay more, in bursts, mostly at electronics and gift-card
  merchants, with cards from a few foreign BINs; some honest users pay a lot too, so no single column
  separates them.
merchants.csv: merchant,category (a lookup table).
bins.csv: bin,country (a lookup table).

Standard library only; deterministic for a given --seed. Apache-2.0, like the repository.
"""
import argparse
import os
import random
import time

ap = argparse.ArgumentParser()
ap.add_argument("--days", type=int, default=60)
ap.add_argument("--users", type=int, default=3000)
ap.add_argument("--merchants", type=int, default=200)
ap.add_argument("--seed", type=int, default=11)
ap.add_argument("--out-dir", required=True)
a = ap.parse_args()
rnd = random.Random(a.seed)
os.makedirs(a.out_dir, exist_ok=True)

categories = ["grocery", "fashion", "electronics", "gift_cards", "travel", "books"]
risky = {"electronics", "gift_cards"}
merchants = [(f"m{i}", categories[i % len(categories)]) for i in range(a.merchants)]
by_cat = {c: [m for m, k in merchants if k == c] for c in categories}
home_bins = [f"4{rnd.randrange(10**5):05d}" for _ in range(40)]
foreign_bins = [f"5{rnd.randrange(10**5):05d}" for _ in range(6)]

rows = []
for u in range(a.users):
    bad = rnd.random() < 0.02
    start = rnd.uniform(0, a.days * 86_400 * 0.9)
    n = rnd.randint(3, 12) if bad else rnd.randint(1, 25)
    t = start
    bin_ = rnd.choice(foreign_bins if bad and rnd.random() < 0.7 else home_bins)
    for _ in range(n):
        # Fraudsters burst (minutes apart); honest users come back days later.
        t += rnd.expovariate(1 / 600) if bad else rnd.expovariate(1 / (3 * 86_400))
        if t >= a.days * 86_400:
            break
        if bad:
            cat = rnd.choice(sorted(risky)) if rnd.random() < 0.8 else rnd.choice(categories)
            amount = rnd.uniform(150, 900)
        else:
            cat = rnd.choice(categories)
            amount = rnd.lognormvariate(3.6, 0.9)
        m = rnd.choice(by_cat[cat])
        disputed = 1 if bad and rnd.random() < 0.85 else (1 if rnd.random() < 0.002 else 0)
        rows.append((t, f"u{u}", bin_, m, round(amount, 2), disputed))
rows.sort()
day0 = 1_767_225_600  # 2026-01-01T00:00:00Z
with open(os.path.join(a.out_dir, "payments.csv"), "w") as f:
    f.write("id,time,user,card_bin,merchant,amount,disputed\n")
    for i, (t, u, b, m, amt, d) in enumerate(rows):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(day0 + t)))
        f.write(f"t{i},{stamp},{u},{b},{m},{amt:.2f},{d}\n")
with open(os.path.join(a.out_dir, "merchants.csv"), "w") as f:
    f.write("merchant,category\n")
    for m, c in merchants:
        f.write(f"{m},{c}\n")
with open(os.path.join(a.out_dir, "bins.csv"), "w") as f:
    f.write("bin,country\n")
    for b in home_bins:
        f.write(f"{b},SG\n")
    for k, b in enumerate(foreign_bins):
        f.write(f"{b},{['US', 'GB', 'NG'][k % 3]}\n")
bad = sum(r[5] for r in rows)
print(f"{len(rows)} payments by {a.users} users at {a.merchants} merchants over {a.days} days, "
      f"{bad} disputed -> {a.out_dir}/payments.csv, merchants.csv, bins.csv")
