//! Incremental peeling on wiki-Vote, as Spade measures it: the first 90 % of the edges (file order)
//! peeled statically, the last 10 % inserted one edge at a time; each insertion's latency (the reorder
//! and the densest set read after it), then proof that the maintained order equals a static re-peel of
//! the final graph — checked after every 1,000th insertion too, outside the timing. Run twice: as an
//! undirected graph and as the voter × votee bipartite matrix FRAUDAR peels. Then batches of 100.
//! `cargo run --release -p argus_graph --example incremental -- ../shared/data/graphs/wiki-vote.txt`

use argus_graph::IncrementalPeel;
use std::time::Instant;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(name: &str, edges: &[(u32, u32, f64)]) -> bool {
    let split = edges.len() * 9 / 10;
    let t0 = Instant::now();
    let mut p = IncrementalPeel::from_edges(&edges[..split]);
    let build = t0.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(edges.len() - split);
    let mut reorder_only = Vec::with_capacity(edges.len() - split);
    let mut touched = 0usize;
    let mut checks = 0usize;
    let mut ok = true;
    for (i, &(a, b, w)) in edges[split..].iter().enumerate() {
        let t = Instant::now();
        let r = p.insert(a, b, w);
        let t_mid = t.elapsed();
        let d = p.densest();
        let t_all = t.elapsed();
        std::hint::black_box(&d);
        reorder_only.push(t_mid.as_secs_f64() * 1e6);
        lat.push(t_all.as_secs_f64() * 1e6);
        touched += r.touched;
        if i % 1000 == 999 {
            checks += 1;
            ok &= p.order() == p.static_reorder();
        }
    }
    let n = lat.len();
    let exact = p.order() == p.static_reorder();
    ok &= exact;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (m_all, m_re) = (mean(&lat), mean(&reorder_only));
    lat.sort_by(f64::total_cmp);
    reorder_only.sort_by(f64::total_cmp);
    let d = p.densest();
    println!(
        "{name}: {} nodes, {} initial edges (static peel {:.1} ms), {n} inserted one at a time",
        p.nodes(),
        split,
        build * 1e3
    );
    println!(
        "  insert + densest set: mean {:.2} µs, median {:.2} µs, p99 {:.2} µs, max {:.1} µs",
        m_all,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[n - 1]
    );
    println!(
        "  reorder alone:        mean {:.2} µs, median {:.2} µs, p99 {:.2} µs, max {:.1} µs; {:.1} positions rewritten per insertion",
        m_re,
        pct(&reorder_only, 0.5),
        pct(&reorder_only, 0.99),
        reorder_only[n - 1],
        touched as f64 / n as f64
    );
    println!(
        "  densest set now: {} nodes, density {:.4}",
        d.nodes.len(),
        d.density
    );
    println!(
        "  order equals a static re-peel: {} (final graph) and at {checks} checkpoints: {}",
        if exact { "yes" } else { "NO" },
        if ok { "all equal" } else { "NOT ALL EQUAL" }
    );
    // Batches of 100 from the same start.
    let mut q = IncrementalPeel::from_edges(&edges[..split]);
    let t = Instant::now();
    let batches: Vec<&[(u32, u32, f64)]> = edges[split..].chunks(100).collect();
    for c in &batches {
        q.insert_batch(c);
    }
    let s = t.elapsed().as_secs_f64();
    let same = q.order() == p.order();
    println!("  batches of 100: {:.2} µs per edge ({} batches, {:.2} ms per batch); order equals one-at-a-time: {}", s * 1e6 / n as f64, batches.len(), s * 1e3 / batches.len() as f64, same);
    ok && same
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/graphs/wiki-vote.txt".into());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let pairs: Vec<(u32, u32)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    let max = pairs.iter().map(|&(a, b)| a.max(b)).max().unwrap_or(0) + 1;
    let undirected: Vec<(u32, u32, f64)> = pairs.iter().map(|&(a, b)| (a, b, 1.0)).collect();
    let bipartite: Vec<(u32, u32, f64)> = pairs.iter().map(|&(a, b)| (a, max + b, 1.0)).collect();
    let ok =
        run("wiki-Vote, undirected", &undirected) & run("wiki-Vote, voter × votee", &bipartite);
    if !ok {
        eprintln!("the maintained order differs from a static re-peel");
        std::process::exit(1);
    }
}
