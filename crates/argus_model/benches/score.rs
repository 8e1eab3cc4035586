//! Scoring latency of a 300-tree, depth-6 model on one core (the target: ≤ 5 µs).
//! `cargo bench -p argus_model --bench score`

use argus_model::ensemble::{Compare, Ensemble, Link, Missing, Node, LEAF};

fn main() {
    divan::main();
}

/// A full binary tree of depth 6 on 30 features with pseudo-random thresholds.
fn model(trees: usize, depth: u32, features: usize) -> Ensemble {
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut ts = Vec::new();
    for _ in 0..trees {
        let internal = (1usize << depth) - 1;
        let mut nodes = Vec::new();
        for i in 0..internal {
            nodes.push(Node {
                feature: (rnd() * features as f64) as u32,
                threshold: rnd(),
                left: (2 * i + 1) as u32,
                right: (2 * i + 2) as u32,
                default_left: rnd() < 0.5,
                missing: Missing::Default,
                value: 0.0,
                cover: 1.0,
            });
        }
        for _ in 0..(1usize << depth) {
            nodes.push(Node::leaf(rnd() - 0.5, 1.0));
        }
        assert!(nodes.iter().filter(|n| n.feature == LEAF).count() == 1 << depth);
        ts.push(nodes);
    }
    let mut e = Ensemble {
        features: (0..features).map(|i| format!("f{i}")).collect(),
        base: 0.0,
        link: Link::Logistic { scale: 1.0 },
        compare: Compare::LessEqual,
        trees: ts,
    };
    e.fill_expected_values();
    e
}

fn rows(n: usize, features: usize) -> Vec<Vec<f64>> {
    let mut s = 42u64;
    (0..n)
        .map(|_| {
            (0..features)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect()
        })
        .collect()
}

/// Runs `f` on one of 1,024 random rows per iteration.
fn each_row<T>(b: divan::Bencher, f: impl Fn(&[f64]) -> T) {
    let xs = rows(1024, 30);
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) & 1023;
        divan::black_box(f(divan::black_box(&xs[i])))
    });
}

#[divan::bench(sample_count = 500, sample_size = 20)]
fn score_300_trees_depth_6(b: divan::Bencher) {
    let m = model(300, 6, 30);
    each_row(b, |x| m.score(x));
}

#[divan::bench(sample_count = 500, sample_size = 20)]
fn score_300_trees_depth_6_compiled(b: divan::Bencher) {
    let m = argus_model::Scorer::new(&model(300, 6, 30)).unwrap();
    each_row(b, |x| m.score(x));
}

#[divan::bench(sample_count = 500, sample_size = 20)]
fn score_and_top_3_reasons_300_trees_depth_6(b: divan::Bencher) {
    let m = model(300, 6, 30);
    each_row(b, |x| m.top_reasons(x, 3));
}
