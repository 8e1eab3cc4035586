//! `argus_suggest` — "did you mean": the closest candidate to a misspelt name, for diagnostics of the
//! schema, features, configuration, rules and policies alike. No dependencies; depends on nothing of
//! Argus, so that the rule language can use it and still stand alone.

/// `did you mean `x`?` for the closest candidate within a small edit distance (ties: alphabetical
/// first), or an empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("did you mean `{c}`?"))
        .unwrap_or_default()
}

/// The closest candidate within `max(2, len / 3)` edits.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= 2.max(word.len() / 3) && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            cur[j] = (prev[j] + 1)
                .min(cur[j - 1] + 1)
                .min(prev[j - 1] + usize::from(a[i - 1] != b[j - 1]));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_within_reach() {
        let names = ["amount", "account", "country"];
        assert_eq!(
            did_you_mean("amont", names.iter().copied()),
            "did you mean `amount`?"
        );
        assert_eq!(did_you_mean("zzzzzz", names.iter().copied()), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
