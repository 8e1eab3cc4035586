"""Groups a flat `perf report` (self time per symbol) by where the time goes: each Rust crate (the
first segment of the demangled path), the kernel, libc, and the rest; then the top symbols.

    perf report -i perf.data --stdio --no-children --sort symbol --percent-limit 0 \
        | python3 bench/perf_summary.py [TOP]

Used by bench/cluster.sh (PERF=1) on the Argus nodes over a saturated run.
"""
import re
import sys
from collections import defaultdict

top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
line_re = re.compile(r"^\s*([\d.]+)%\s+\[(.)\]\s+(.*)$")
groups = defaultdict(float)
symbols = []
for line in sys.stdin:
    m = line_re.match(line)
    if not m:
        continue
    pct, space, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    symbols.append((pct, space, sym))
    if space == "k":
        g = "[kernel]"
    else:
        # `<argus_x::Y as core::Z>::f`, `argus_x::f::{{closure}}`, `_ZN…` left mangled, libc's `__memmove…`
        s = sym.lstrip("<&*( ").replace("dyn ", "").replace("mut ", "")
        head = re.split(r"::|<| ", s, maxsplit=1)[0]
        if head.startswith("0x") or not head:
            g = "[unknown]"
        elif "::" not in s:
            g = "[libc and other C]"
        else:
            g = head
    groups[g] += pct
# The crates and symbols in a few kinds of work.
KINDS = [
    ("the kernel (syscalls, thread switches, network)", lambda g, s: g == "[kernel]"),
    ("memory allocation (mimalloc, malloc, free)", lambda g, s: re.match(r"_?mi_|_?_?(int_)?(malloc|free|calloc|realloc)", s) is not None),
    ("copying and comparing bytes (memmove, memcmp, memset)", lambda g, s: re.match(r"__(mem|str)", s) is not None),
    ("Argus (argus_*)", lambda g, s: g.startswith("argus_")),
    ("HTTP and the async runtime (tokio, hyper, axum, tower, futures)", lambda g, s: g.split("_")[0] in ("tokio", "hyper", "axum", "tower", "futures", "http", "mio")),
    ("the NATS client (async_nats, bytes)", lambda g, s: g in ("async_nats", "bytes", "nuid")),
    ("encoding (serde, serde_json, bincode)", lambda g, s: g.startswith("serde") or g == "bincode"),
    ("SQLite (the decision index)", lambda g, s: s.startswith("sqlite3")),
    ("Rust's core, alloc, std and hash maps", lambda g, s: g in ("core", "alloc", "std", "hashbrown")),
]
kinds = defaultdict(float)
for pct, space, sym in symbols:
    g = "[kernel]" if space == "k" else None
    if g is None:
        s = sym.lstrip("<&*( ").replace("dyn ", "").replace("mut ", "")
        g = re.split(r"::|<| ", s, maxsplit=1)[0]
    for name, test in KINDS:
        if test(g, sym):
            kinds[name] += pct
            break
    else:
        kinds["the rest"] += pct
total = sum(p for p, _, _ in symbols)
print(f"self time by kind of work (of {total:.1f} % sampled):")
for g, p in sorted(kinds.items(), key=lambda kv: -kv[1]):
    print(f"  {p:6.2f} %  {g}")
print("by crate:")
for g, p in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
    print(f"  {p:6.2f} %  {g}")
print(f"top {top} symbols:")
for p, space, sym in sorted(symbols, key=lambda t: -t[0])[:top]:
    print(f"  {p:6.2f} %  [{space}] {sym[:150]}")
