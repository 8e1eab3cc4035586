//! The semi-supervised signals on Bitcoin-OTC's real labels, time-ordered (the protocol and the
//! printed tables: `examples/otc_semi.rs`, quoted in BENCHMARKS.md): the propagated label score beats
//! the degree baseline clearly and the dense-block score, early and late, and no label known later
//! reaches a score. Reads `../shared/data/graphs` (`ARGUS_DATA_DIR` overrides `../shared/data`); CI has it.

#[path = "../examples/otc_semi.rs"]
mod otc;

use std::path::PathBuf;

fn data() -> Option<PathBuf> {
    let base = std::env::var("ARGUS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = base.join("graphs");
    if dir.join("bitcoin-otc.csv").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
        "ARGUS_REQUIRE_DATA is set (CI) but {} has no bitcoin-otc.csv",
        dir.display()
    );
    eprintln!("skipped: no {}", dir.display());
    None
}

fn auc(r: &[(String, otc::Quality)], name: &str) -> f64 {
    r.iter().find(|(n, _)| n == name).unwrap().1.auc
}

#[test]
fn the_propagated_label_score_beats_degree_and_dense_blocks_on_real_labels() {
    let Some(dir) = data() else { return };
    for k in [3, usize::MAX] {
        let rows = otc::rows(&dir, k).unwrap();
        // Every labelled user is scored once; 180 fraudsters, 136 benign.
        assert_eq!(rows.len(), 316);
        assert_eq!(rows.iter().filter(|r| r.fraud).count(), 180);
        let r = otc::evaluate(&rows).unwrap();
        let (score, degree, block) = (
            auc(&r.all, "label_score"),
            auc(&r.all, "degree"),
            auc(&r.all, "dense_block"),
        );
        eprintln!("k = {k}: label score {score:.3}, degree {degree:.3}, dense block {block:.3}");
        assert!(score > degree + 0.1, "k = {k}: {score} vs degree {degree}");
        assert!(
            score > block + 0.1,
            "k = {k}: {score} vs dense block {block}"
        );
        assert!(
            auc(&r.later_half, "GBDT: all of them") > auc(&r.later_half, "degree"),
            "k = {k}"
        );
    }
}

/// The label-derived signals come from labels only: with none known, they are all zero (so a score
/// can carry no label that was not known when it was computed).
#[test]
fn without_labels_the_label_signals_are_zero() {
    use argus_graph::{Propagation, PropagationConfig};
    let mut p = Propagation::new(PropagationConfig {
        signed: true,
        ..Default::default()
    });
    for i in 0..100u32 {
        p.add_edge(
            i,
            (i * 7 + 3) % 100,
            f64::from(i % 21) - 10.0,
            i64::from(i) * 1000,
        );
    }
    for i in 0..100u32 {
        let s = p.signals(i, 100_000);
        assert_eq!(
            (s.fraud_share, s.fraud_share_2hop, s.legit_distrust, s.score),
            (0.0, 0.0, 0.0, 0.0)
        );
    }
}
