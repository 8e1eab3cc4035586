//! `[[text.duplicates]]`: the same or a near-same text posted by distinct accounts within a window
//! (review farms, copy-pasted listings, spam messages), as a global stage ([`crate::stages`]).
//!
//! Each text is normalized (lower case, words of letters and digits), cut into word shingles (three
//! words; shorter texts use their words), and summarized by a MinHash signature of 64 values; the
//! share of equal values estimates the Jaccard similarity of two texts' shingle sets. Locality-
//! sensitive hashing (16 bands of 4 values) finds the candidates: two texts of similarity 0.7 share a
//! band with probability 1 − (1 − 0.7⁴)¹⁶ ≈ 0.988 (0.8: 0.9995; 0.4: 0.34), two of similarity 0.3
//! with probability 0.12. Each band bucket remembers its newest 64 texts, so a wave of one text by
//! many accounts costs a new copy at most 16 × 64 comparisons (and `similar_accounts` saturates
//! there), whatever the window holds. Only signatures are kept, never the
//! text. Every event of a declared type gets:
//!
//! - `text_<name>_similar_accounts`: distinct other accounts that posted a text of estimated
//!   similarity ≥ `threshold` within `window` before it;
//! - `text_<name>_max_similarity`: the highest estimated similarity to another account's text in the
//!   window (0 when none shares a band);
//! - `text_<name>_group`: the text's near-duplicate group (a string; null when the text is not kept):
//!   the group of the most similar earlier text of the window at or above the threshold, else a new
//!   one (the text's own number). `[[graph.links]] text = "<name>"` links the accounts of one group in
//!   the entity graph: similarity edges.
//!
//! Paraphrase (synonyms, reordered or dropped words) lowers the similarity of a template's copies;
//! the threshold trades that camouflage against honest texts that share stock phrases ("great
//! product, fast delivery"), which is why very short texts are left out (`min_words`).

use crate::graph::{check_name, key};
use argus_event::time::parse_duration;
use argus_event::{Event, Schema, Value, ACTOR_SLOT};
use argus_features::{FeatureSet, Out};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Values per signature, and their banding.
pub const HASHES: usize = 64;
const BANDS: usize = 16;
const ROWS: usize = HASHES / BANDS;

/// `[text]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    #[serde(default)]
    pub duplicates: Vec<DuplicatesConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashed: Vec<HashedConfig>,
}

/// `[[text.hashed]]`: a text as hashed word n-grams, features a model learns from (`argus train`):
/// `text_<name>_h0` … `text_<name>_h<buckets-1>`, each the share of the text's words and word pairs
/// that hash to that bucket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HashedConfig {
    pub name: String,
    pub events: Vec<String>,
    pub field: String,
    /// Buckets, 8 to 256. Default 64.
    pub buckets: Option<usize>,
    /// 1: words; 2: words and pairs of words. Default 2.
    pub ngrams: Option<usize>,
}

#[derive(Debug, Clone)]
struct HashedSpec {
    slot: Vec<Option<usize>>,
    ngrams: usize,
    features: Vec<usize>,
}

/// `[[text.duplicates]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesConfig {
    /// Lower-case letters, digits and `_`: the features are `text_<name>_…`.
    pub name: String,
    pub events: Vec<String>,
    /// A string field holding the text.
    pub field: String,
    /// How long a text counts. Default `24h`.
    pub window: Option<String>,
    /// Estimated Jaccard similarity from which two texts are near-duplicates. Default 0.7.
    pub threshold: Option<f64>,
    /// Texts with fewer words are not compared (stock phrases). Default 5.
    pub min_words: Option<usize>,
    /// Texts kept at most (the oldest go first). Default 200,000: their signatures alone are
    /// 200,000 × 64 × 8 bytes, about 100 MB (computed, not measured).
    pub max_texts: Option<usize>,
    /// Words per shingle, 1 to 5. Default 3 (word order matters: copies); 1 compares the texts' sets
    /// of words, common English words left out, which survives reordering and some synonyms
    /// (paraphrases) at the price of more honest texts that share a vocabulary.
    pub shingle_words: Option<usize>,
}

/// One compiled `[[text.duplicates]]`.
#[derive(Debug, Clone)]
pub struct DupSpec {
    shingle: usize,
    /// Per event type: the text's slot.
    slot: Vec<Option<usize>>,
    window_ms: i64,
    threshold: f64,
    min_words: usize,
    max_texts: usize,
    f_accounts: usize,
    f_max: usize,
    f_group: usize,
    /// The declaration's name and event types, for `[[graph.links]] text = "…"`.
    name: String,
    types: Vec<usize>,
}

/// The compiled `[text]`.
#[derive(Debug, Clone)]
pub struct TextSpec {
    dups: Vec<DupSpec>,
    hashed: Vec<HashedSpec>,
    pub fingerprint: u64,
    /// The same declaration's fingerprint before texts had groups (`argus.text.v1`): a snapshot
    /// section under it holds [`TextStateV1`] and is upgraded on restore.
    pub v1_fingerprint: u64,
}

impl TextSpec {
    pub fn feature_slots(&self) -> Vec<usize> {
        self.dups
            .iter()
            .flat_map(|d| [d.f_accounts, d.f_max, d.f_group])
            .chain(self.hashed.iter().flat_map(|h| h.features.iter().copied()))
            .collect()
    }

    /// For `[[text.duplicates]]` `name`: the slot of `text_<name>_group` and the event types it is
    /// written for.
    pub fn group(&self, name: &str) -> Option<(usize, &[usize])> {
        self.dups
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.f_group, d.types.as_slice()))
    }

    /// The `[[text.duplicates]]` names.
    pub fn duplicate_names(&self) -> impl Iterator<Item = &str> {
        self.dups.iter().map(|d| d.name.as_str())
    }
}

/// Checks `[text]` against the schema and registers its features.
pub fn compile(
    c: &TextConfig,
    schema: &Schema,
    features: &mut FeatureSet,
) -> Result<TextSpec, Vec<String>> {
    let mut errors = Vec::new();
    let n = schema.types.len();
    let mut dups = Vec::new();
    for (i, d) in c.duplicates.iter().enumerate() {
        let at = format!("text.duplicates[{i}]");
        check_name(&mut errors, &at, &d.name);
        if c.duplicates[..i].iter().any(|o| o.name == d.name) {
            errors.push(format!("{at}: name `{}` is used twice", d.name));
        }
        let slot = text_slots(&mut errors, &at, schema, &d.events, &d.field);
        let window = d.window.as_deref().unwrap_or("24h");
        let window_ms = match parse_duration(window) {
            Some(ms) if ms > 0 => ms,
            _ => {
                errors.push(format!("{at}: window: invalid duration `{window}`"));
                1
            }
        };
        let threshold = d.threshold.unwrap_or(0.7);
        if !(threshold > 0.0 && threshold <= 1.0) {
            errors.push(format!("{at}: threshold: in (0, 1]"));
        }
        let types: Vec<usize> = (0..n).filter(|&t| slot[t].is_some()).collect();
        let mut add = |name: String, out: Out, what: &str| -> usize {
            features
                .add_external(&name, out, &types, what)
                .unwrap_or_else(|e| {
                    errors.push(format!("{at}: {e}"));
                    0
                })
        };
        let f_accounts = add(
            format!("text_{}_similar_accounts", d.name),
            Out::Int,
            "distinct other accounts that posted a near-duplicate text within the window",
        );
        let f_max = add(
            format!("text_{}_max_similarity", d.name),
            Out::Float,
            "highest estimated similarity to another account's text within the window",
        );
        let f_group = add(
            format!("text_{}_group", d.name),
            Out::Str,
            "the text's near-duplicate group (texts at or above the threshold share one)",
        );
        let shingle = d.shingle_words.unwrap_or(3);
        if !(1..=5).contains(&shingle) {
            errors.push(format!("{at}: shingle_words: 1 to 5"));
        }
        dups.push(DupSpec {
            shingle,
            slot,
            window_ms,
            threshold,
            min_words: d.min_words.unwrap_or(5),
            max_texts: d.max_texts.unwrap_or(200_000).max(1),
            f_accounts,
            f_max,
            f_group,
            name: d.name.clone(),
            types,
        });
    }
    let mut hashed = Vec::new();
    for (i, h) in c.hashed.iter().enumerate() {
        let at = format!("text.hashed[{i}]");
        check_name(&mut errors, &at, &h.name);
        let slot = text_slots(&mut errors, &at, schema, &h.events, &h.field);
        let buckets = h.buckets.unwrap_or(64);
        if !(8..=256).contains(&buckets) {
            errors.push(format!("{at}: buckets: 8 to 256"));
        }
        let ngrams = h.ngrams.unwrap_or(2);
        if !(1..=2).contains(&ngrams) {
            errors.push(format!("{at}: ngrams: 1 or 2"));
        }
        let types: Vec<usize> = (0..n).filter(|&t| slot[t].is_some()).collect();
        let features = (0..buckets.clamp(8, 256))
            .map(|b| {
                features
                    .add_external(
                        &format!("text_{}_h{b}", h.name),
                        Out::Float,
                        &types,
                        "share of the text's hashed word n-grams in this bucket",
                    )
                    .unwrap_or_else(|e| {
                        errors.push(format!("{at}: {e}"));
                        0
                    })
            })
            .collect();
        hashed.push(HashedSpec {
            slot,
            ngrams,
            features,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let canonical = serde_json::to_vec(c).unwrap_or_default();
    let mut fp = argus_features::config::Canonical::new(b"argus.text.v2");
    fp.bytes(&canonical);
    let mut v1 = argus_features::config::Canonical::new(b"argus.text.v1");
    v1.bytes(&canonical);
    Ok(TextSpec {
        dups,
        hashed,
        fingerprint: fp.finish(),
        v1_fingerprint: v1.finish(),
    })
}

/// The slot of `field` (a string) per event type of `events`.
fn text_slots(
    errors: &mut Vec<String>,
    at: &str,
    schema: &Schema,
    events: &[String],
    field: &str,
) -> Vec<Option<usize>> {
    let mut slot = vec![None; schema.types.len()];
    for e in events {
        let Some(t) = crate::graph::type_or_error(schema, errors, at, e) else {
            continue;
        };
        let et = &schema.types[t];
        match et.slot(field) {
            Some(s) if et.fields[s].ty.stored() == argus_event::FieldType::String => {
                slot[t] = Some(s)
            }
            Some(_) => errors.push(format!("{at}: `{e}`'s field `{field}` is not a string")),
            None => errors.push(format!(
                "{at}: `{e}` has no field `{field}`{} (declare it under [[event_types]])",
                argus_event::schema::did_you_mean(field, et.input_names())
            )),
        }
    }
    if events.is_empty() {
        errors.push(format!("{at}: events: name at least one event type"));
    }
    slot
}

/// Shares of a text's hashed words (and word pairs) per bucket.
pub fn hashed(words: &[String], ngrams: usize, out: &mut [f64]) {
    out.iter_mut().for_each(|x| *x = 0.0);
    let b = out.len() as u64;
    if b == 0 || words.is_empty() {
        return;
    }
    let mut total = 0.0;
    for w in words {
        out[(xxhash_rust::xxh3::xxh3_64(w.as_bytes()) % b) as usize] += 1.0;
        total += 1.0;
    }
    if ngrams >= 2 {
        for p in words.windows(2) {
            let h =
                xxhash_rust::xxh3::xxh3_64_with_seed(format!("{} {}", p[0], p[1]).as_bytes(), 2);
            out[(h % b) as usize] += 1.0;
            total += 1.0;
        }
    }
    out.iter_mut().for_each(|x| *x /= total);
}

/// The words of a text, normalized: lower case, runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Common English words, left out of single-word shingles.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "i",
    "in", "is", "it", "its", "my", "of", "on", "or", "so", "that", "the", "this", "to", "was",
    "were", "with", "you", "your", "very", "all", "will", "would", "not", "me", "we", "they",
    "after",
];

/// The words a signature is made of: with single-word shingles, the common words left out.
pub fn content(words: Vec<String>, shingle: usize) -> Vec<String> {
    if shingle == 1 {
        words
            .into_iter()
            .filter(|w| !STOPWORDS.contains(&w.as_str()))
            .collect()
    } else {
        words
    }
}

/// The MinHash signature of a text's word shingles (`shingle` words; its words when shorter).
pub fn signature_of(words: &[String], shingle: usize) -> [u64; HASHES] {
    let mut sig = [u64::MAX; HASHES];
    let k = if words.len() >= shingle {
        shingle.max(1)
    } else {
        1
    };
    for sh in words.windows(k) {
        let h = xxhash_rust::xxh3::xxh3_64(sh.join(" ").as_bytes());
        for (i, s) in sig.iter_mut().enumerate() {
            // A family of hash functions: the shingle's hash remixed with a seed per position.
            let v = xxhash_rust::xxh3::xxh3_64_with_seed(&h.to_le_bytes(), i as u64);
            if v < *s {
                *s = v;
            }
        }
    }
    sig
}

/// [`signature_of`] with three-word shingles.
pub fn signature(words: &[String]) -> [u64; HASHES] {
    signature_of(words, 3)
}

/// The estimated Jaccard similarity of two signatures.
pub fn similarity(a: &[u64; HASHES], b: &[u64; HASHES]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / HASHES as f64
}

fn band_keys(sig: &[u64; HASHES]) -> [u64; BANDS] {
    let mut k = [0u64; BANDS];
    for (b, key) in k.iter_mut().enumerate() {
        let mut bytes = [0u8; ROWS * 8];
        for r in 0..ROWS {
            bytes[r * 8..r * 8 + 8].copy_from_slice(&sig[b * ROWS + r].to_le_bytes());
        }
        *key = xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, b as u64);
    }
    k
}

/// One kept text: when, whose (an index into the names), its near-duplicate group, its signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Text {
    time: i64,
    account: u32,
    group: u64,
    #[serde(with = "sig_serde")]
    sig: [u64; HASHES],
}

mod sig_serde {
    use super::HASHES;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub fn serialize<S: Serializer>(s: &[u64; HASHES], ser: S) -> Result<S::Ok, S::Error> {
        s.as_slice().serialize(ser)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; HASHES], D::Error> {
        let v = Vec::<u64>::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a signature of another length"))
    }
}

/// One `[[text.duplicates]]`'s window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    texts: VecDeque<Text>,
    /// The sequence number of `texts[0]` (texts are numbered in arrival order).
    first: u64,
    /// Band key → sequence numbers of the texts in that bucket, oldest first, at most
    /// [`BUCKET_CAP`] (the newest); rebuilt on restore.
    #[serde(skip)]
    buckets: HashMap<u64, VecDeque<u64>>,
}

/// Texts remembered per band bucket: a wave of one text by many accounts costs each new copy at
/// most `BANDS × BUCKET_CAP` comparisons, and `similar_accounts` saturates at that.
pub const BUCKET_CAP: usize = 64;

impl Window {
    fn expire(&mut self, cut: i64, max: usize) {
        while let Some(t) = self.texts.front() {
            if t.time >= cut && self.texts.len() < max {
                break;
            }
            let seq = self.first;
            for k in band_keys(&t.sig) {
                if let Some(v) = self.buckets.get_mut(&k) {
                    // Buckets are in arrival order: the oldest text, if still there, is first.
                    if v.front() == Some(&seq) {
                        v.pop_front();
                    }
                    if v.is_empty() {
                        self.buckets.remove(&k);
                    }
                }
            }
            self.texts.pop_front();
            self.first += 1;
        }
    }

    fn rebuild(&mut self) {
        self.buckets.clear();
        for (i, t) in self.texts.iter().enumerate() {
            for k in band_keys(&t.sig) {
                push_capped(self.buckets.entry(k).or_default(), self.first + i as u64);
            }
        }
    }
}

fn push_capped(v: &mut VecDeque<u64>, seq: u64) {
    if v.len() == BUCKET_CAP {
        v.pop_front();
    }
    v.push_back(seq);
}

/// The state as written before texts had groups (snapshot sections under
/// [`TextSpec::v1_fingerprint`]): each text without its group.
#[derive(Deserialize)]
struct TextStateV1 {
    accounts: crate::graph::Interner,
    windows: Vec<WindowV1>,
}

#[derive(Deserialize)]
struct WindowV1 {
    texts: VecDeque<TextV1>,
    first: u64,
}

#[derive(Deserialize)]
struct TextV1 {
    time: i64,
    account: u32,
    #[serde(with = "sig_serde")]
    sig: [u64; HASHES],
}

/// The stage's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextState {
    accounts: crate::graph::Interner,
    windows: Vec<Window>,
}

impl TextState {
    pub fn new(spec: &TextSpec) -> TextState {
        TextState {
            accounts: Default::default(),
            windows: spec.dups.iter().map(|_| Window::default()).collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        crate::stages::encode_state(self)
    }

    pub fn decode(spec: &TextSpec, bytes: &[u8]) -> Result<TextState, String> {
        let s: TextState = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        s.indexed(spec)
    }

    /// A decoded state with its indexes rebuilt, if it fits the declaration.
    fn indexed(mut self, spec: &TextSpec) -> Result<TextState, String> {
        if self.windows.len() != spec.dups.len() {
            return Err("text declarations changed".into());
        }
        self.accounts.reindex();
        for w in &mut self.windows {
            w.rebuild();
        }
        Ok(self)
    }

    /// A state written before texts had groups: each kept text becomes a group of its own (its
    /// number), so later copies join the newest earlier one they match, as they would have.
    pub fn decode_v1(spec: &TextSpec, bytes: &[u8]) -> Result<TextState, String> {
        let old: TextStateV1 = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        let s = TextState {
            accounts: old.accounts,
            windows: old
                .windows
                .into_iter()
                .map(|w| Window {
                    texts: w
                        .texts
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| Text {
                            time: t.time,
                            account: t.account,
                            group: w.first + i as u64,
                            sig: t.sig,
                        })
                        .collect(),
                    first: w.first,
                    buckets: HashMap::new(),
                })
                .collect(),
        };
        s.indexed(spec)
    }

    pub fn digest(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&self.encode())
    }

    /// Applies one accepted event and writes the features into `out`.
    pub fn apply(&mut self, spec: &TextSpec, ev: &Event, out: &mut [Value]) {
        let ty = ev.ty as usize;
        // Each text field is cut into words once, whatever number of declarations read it.
        let mut parsed: Vec<(usize, Vec<String>)> = Vec::new();
        let mut words_of = |slot: usize, text: &str| -> Vec<String> {
            if let Some((_, w)) = parsed.iter().find(|(s, _)| *s == slot) {
                return w.clone();
            }
            let w = words(text);
            parsed.push((slot, w.clone()));
            w
        };
        for h in &spec.hashed {
            let Some(slot) = h.slot.get(ty).copied().flatten() else {
                continue;
            };
            let Value::Str(text) = &ev.fields[slot] else {
                continue;
            };
            let mut v = vec![0.0; h.features.len()];
            hashed(&words_of(slot, text), h.ngrams, &mut v);
            for (f, x) in h.features.iter().zip(v) {
                out[*f] = Value::Float(x);
            }
        }
        for (di, d) in spec.dups.iter().enumerate() {
            let Some(slot) = d.slot.get(ty).copied().flatten() else {
                continue;
            };
            let Value::Str(text) = &ev.fields[slot] else {
                out[d.f_accounts] = Value::Int(0);
                out[d.f_max] = Value::Float(0.0);
                out[d.f_group] = Value::Null;
                continue;
            };
            let actor = key(&ev.fields[ACTOR_SLOT]).map(|a| a.into_owned());
            let w = content(words_of(slot, text), d.shingle);
            // Looked up, not added: an account gets an id only when one of its texts is kept.
            let a = actor.as_deref().and_then(|n| self.accounts.get(n));
            let win = &mut self.windows[di];
            win.expire(ev.time.saturating_sub(d.window_ms), usize::MAX);
            if w.len() < d.min_words {
                out[d.f_group] = Value::Null;
                out[d.f_accounts] = Value::Int(0);
                out[d.f_max] = Value::Float(0.0);
                continue;
            }
            let sig = signature_of(&w, d.shingle);
            let keys = band_keys(&sig);
            let mut seen: Vec<u64> = keys
                .iter()
                .filter_map(|k| win.buckets.get(k))
                .flatten()
                .copied()
                .collect();
            seen.sort_unstable();
            seen.dedup();
            let (mut best, mut accounts) = (0.0f64, std::collections::BTreeSet::new());
            // The group: that of the most similar earlier text at or above the threshold, whoever
            // posted it (the earliest of equals: `seen` is in arrival order).
            let mut group: Option<(f64, u64)> = None;
            for s in seen {
                let Some(t) = s
                    .checked_sub(win.first)
                    .and_then(|i| win.texts.get(i as usize))
                else {
                    continue;
                };
                // Only texts before this one (a late event does not see later ones).
                if t.time > ev.time {
                    continue;
                }
                let sim = similarity(&sig, &t.sig);
                if sim >= d.threshold && group.is_none_or(|(g, _)| sim > g) {
                    group = Some((sim, t.group));
                }
                if Some(t.account) == a {
                    continue;
                }
                best = best.max(sim);
                if sim >= d.threshold {
                    accounts.insert(t.account);
                }
            }
            out[d.f_accounts] = Value::Int(accounts.len() as i64);
            out[d.f_max] = Value::Float(best);
            let Some(name) = actor.as_deref() else {
                out[d.f_group] = Value::Null;
                continue;
            };
            let a = self.accounts.id(name);
            // The cap: the oldest texts go first.
            win.expire(i64::MIN, d.max_texts);
            let seq = win.first + win.texts.len() as u64;
            let group = group.map_or(seq, |(_, g)| g);
            out[d.f_group] = Value::Str(group.to_string().into());
            for k in keys {
                push_capped(win.buckets.entry(k).or_default(), seq);
            }
            win.texts.push_back(Text {
                time: ev.time,
                account: a,
                group,
                sig,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(t: &str) -> [u64; HASHES] {
        signature(&words(t))
    }

    #[test]
    fn near_copies_are_similar_and_different_texts_are_not() {
        let a = "This phone case is amazing, fits perfectly and the color is exactly as shown in the pictures";
        let b = "this phone case is AMAZING!! fits perfectly and the colour is exactly as shown in the pictures";
        let c = "Arrived late and the zipper broke after two days, would not buy again from this seller";
        assert!(similarity(&sig(a), &sig(a)) == 1.0);
        let ab = similarity(&sig(a), &sig(b));
        assert!(ab > 0.6, "{ab}");
        assert!(similarity(&sig(a), &sig(c)) < 0.1);
        assert_eq!(words("Hello, World! 42x"), ["hello", "world", "42x"]);
    }

    /// A state written before texts had groups (`argus.text.v1`) restores: its texts become groups of
    /// their own, and the next copy gets the same features as under the state it came from.
    #[test]
    fn a_state_from_before_groups_restores() {
        let cfg = crate::Config::from_str(
            "[[event_types]]\nname = \"review.create\"\n[event_types.fields]\ntext = { type = \"string\" }\n[[text.duplicates]]\nname = \"review\"\nevents = [\"review.create\"]\nfield = \"text\"\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let spec = cfg.text.clone().unwrap();
        let n = cfg.features.features.len();
        let decoder = crate::Engine::new(cfg).decoder().clone();
        let spam = "Amazing quality phone case exceeded all my expectations fast shipping and the seller is very professional";
        let ev = |i: u32, actor: &str| {
            decoder
                .decode_json(&serde_json::json!({"id": format!("e{i}"), "type": "review.create", "time": 1_780_000_000_000i64 + i as i64, "actor": actor, "data": {"item": "i1", "seller": "s1", "rating": 5, "text": spam}}))
                .unwrap()
        };
        let mut state = TextState::new(&spec);
        let mut out = vec![Value::Null; n];
        state.apply(&spec, &ev(1, "a1"), &mut out);
        state.apply(&spec, &ev(2, "a2"), &mut out);
        // The same state as v1 wrote it: no groups.
        #[derive(Serialize)]
        struct V1<'a> {
            accounts: &'a crate::graph::Interner,
            windows: Vec<W1>,
        }
        #[derive(Serialize)]
        struct W1 {
            texts: Vec<T1>,
            first: u64,
        }
        #[derive(Serialize)]
        struct T1 {
            time: i64,
            account: u32,
            #[serde(with = "sig_serde")]
            sig: [u64; HASHES],
        }
        let v1 = V1 {
            accounts: &state.accounts,
            windows: state
                .windows
                .iter()
                .map(|w| W1 {
                    texts: w
                        .texts
                        .iter()
                        .map(|t| T1 {
                            time: t.time,
                            account: t.account,
                            sig: t.sig,
                        })
                        .collect(),
                    first: w.first,
                })
                .collect(),
        };
        let bytes = bincode::serialize(&v1).unwrap();
        let mut back = TextState::decode_v1(&spec, &bytes).unwrap();
        let groups: Vec<u64> = back.windows[0].texts.iter().map(|t| t.group).collect();
        assert_eq!(groups, [0, 1]);
        let (mut a, mut b) = (vec![Value::Null; n], vec![Value::Null; n]);
        state.apply(&spec, &ev(3, "a3"), &mut a);
        back.apply(&spec, &ev(3, "a3"), &mut b);
        assert_eq!(
            a, b,
            "the same features, the same group (the earliest of equals)"
        );
        assert!(TextState::decode_v1(&spec, &bytes[..bytes.len() - 3]).is_err());
    }
}
