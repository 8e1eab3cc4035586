//! Evaluation metrics: ROC AUC, average precision, precision and recall at k, and the Fraud Detection
//! Handbook's Card Precision@k. Ties are handled as scikit-learn does (tied scores form one threshold).

use std::collections::{HashMap, HashSet};

/// Indices sorted by score, highest first (NaN last), ties kept in input order.
fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y.total_cmp(&x),
        }
    });
    idx
}

/// Area under the ROC curve (trapezoids over tied groups); `None` without both classes.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let idx = ranked(scores);
    let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let (tp0, fp0) = (tp, fp);
        let s = scores[idx[i]];
        while i < idx.len() && (scores[idx[i]] == s || (s.is_nan() && scores[idx[i]].is_nan())) {
            if labels[idx[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        area += (fp - fp0) * (tp + tp0) / 2.0;
    }
    Some(area / (pos * neg))
}

/// Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over the thresholds (scikit-learn's definition).
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    if pos == 0.0 {
        return None;
    }
    let idx = ranked(scores);
    let (mut tp, mut n, mut ap, mut prev_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && (scores[idx[i]] == s || (s.is_nan() && scores[idx[i]].is_nan())) {
            tp += f64::from(u8::from(labels[idx[i]]));
            n += 1.0;
            i += 1;
        }
        let recall = tp / pos;
        ap += (recall - prev_recall) * (tp / n);
        prev_recall = recall;
    }
    Some(ap)
}

/// Precision and recall of the `k` highest scores.
pub fn precision_recall_at_k(scores: &[f64], labels: &[bool], k: usize) -> (f64, f64) {
    let idx = ranked(scores);
    let k = k.min(idx.len());
    let tp = idx[..k].iter().filter(|&&i| labels[i]).count() as f64;
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    (
        if k == 0 { 0.0 } else { tp / k as f64 },
        if pos == 0.0 { 0.0 } else { tp / pos },
    )
}

/// Card Precision@k (the handbook's `card_precision_top_k`): for each day in order, rank the cards
/// (customers) not detected on earlier days by their highest score that day, take the top `k`, and
/// count those with a fraud that day; the cards found are excluded from later days. Returns the mean
/// over days and the per-day values.
pub fn card_precision_at_k(
    day: &[i64],
    card: &[u64],
    scores: &[f64],
    labels: &[bool],
    k: usize,
) -> (f64, Vec<f64>) {
    let mut days: Vec<i64> = day.to_vec();
    days.sort_unstable();
    days.dedup();
    let mut detected: HashSet<u64> = HashSet::new();
    let mut per_day = Vec::new();
    for d in days {
        let mut best: HashMap<u64, (f64, bool)> = HashMap::new();
        for i in (0..day.len()).filter(|&i| day[i] == d && !detected.contains(&card[i])) {
            let e = best.entry(card[i]).or_insert((f64::NEG_INFINITY, false));
            if scores[i] > e.0 {
                e.0 = scores[i];
            }
            e.1 |= labels[i];
        }
        let mut cards: Vec<(u64, f64, bool)> =
            best.into_iter().map(|(c, (s, l))| (c, s, l)).collect();
        // Highest score first; equal scores by card id, so the result does not depend on hashing.
        cards.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = &cards[..k.min(cards.len())];
        let hits = top.iter().filter(|c| c.2).count();
        per_day.push(hits as f64 / k as f64);
        detected.extend(top.iter().filter(|c| c.2).map(|c| c.0));
    }
    let mean = if per_day.is_empty() {
        0.0
    } else {
        per_day.iter().sum::<f64>() / per_day.len() as f64
    };
    (mean, per_day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // scikit-learn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75; average_precision_score = 0.8333…
        let y = [false, false, true, true];
        let s = [0.1, 0.4, 0.35, 0.8];
        assert!((roc_auc(&s, &y).unwrap() - 0.75).abs() < 1e-12);
        assert!((average_precision(&s, &y).unwrap() - 0.833_333_333_333_333_4).abs() < 1e-12);
        // Ties: all equal scores ⇒ AUC 0.5, AP = positive rate.
        assert!((roc_auc(&[0.5; 4], &y).unwrap() - 0.5).abs() < 1e-12);
        assert!((average_precision(&[0.5; 4], &y).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(precision_recall_at_k(&s, &y, 2), (0.5, 0.5));
        assert!(roc_auc(&s, &[false; 4]).is_none());
    }

    #[test]
    fn card_precision_excludes_cards_found_earlier() {
        // Day 0: cards 1 (fraud) and 2; day 1: card 1 again (excluded, found on day 0) and card 3 (fraud).
        let day = [0, 0, 1, 1];
        let card = [1, 2, 1, 3];
        let s = [0.9, 0.1, 0.99, 0.5];
        let y = [true, false, true, true];
        let (mean, per) = card_precision_at_k(&day, &card, &s, &y, 1);
        assert_eq!(per, vec![1.0, 1.0]);
        assert_eq!(mean, 1.0);
    }
}
