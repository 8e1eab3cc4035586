//! The blast-radius guard: each enforced rule's normal hit rate, learned per checkpoint, and a trip
//! when a rule's rate over a short window of the checkpoint's events jumps past a multiple of it, or
//! when the checkpoint's block rate passes a cap. It counts events, not seconds, so the same decisions
//! in the same order trip it at the same event, live or replayed.

use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// `[lifecycle.guard]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub enabled: bool,
    /// The short window, in events of one checkpoint.
    pub window: u32,
    /// A rule trips only with at least this many hits in the window.
    pub min_hits: u32,
    /// … and a window rate above this multiple of its baseline.
    pub multiple: f64,
    /// The baseline of a rule that has not been watched over `learn_events` events yet (a new rule).
    pub prior_rate: f64,
    /// Events of its checkpoint after which a rule's own hit rate is its baseline.
    pub learn_events: u64,
    /// The highest share of a checkpoint's events that may be blocked over the window (1.0: no cap).
    pub max_block_rate: f64,
    /// The cap applies with at least this many blocks in the window.
    pub min_blocks: u32,
    /// A rule trips only if its last `min_hits` hits came from at least this many distinct actors
    /// (0: any). A broken rule hits everyone; an attack wave that a rule is right to catch usually
    /// comes from a few accounts, and pausing the rule then would disarm it when it is needed.
    pub min_actors: u32,
    /// A tripped rule is paused from the `pause_after`-th decision after the one that tripped it,
    /// counting every checkpoint's decisions in log order (1: from the next event). A pure
    /// function of the decisions' order, so every node of a cluster, and a single node fed the
    /// same order, pause it at the same event; a lag longer than 1 leaves room for a node that
    /// decides an event before the decisions just before it reach it (docs/cluster.md, "The next
    /// stage").
    pub pause_after: u64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            window: 1_000,
            min_hits: 20,
            multiple: 5.0,
            prior_rate: 0.05,
            learn_events: 5_000,
            max_block_rate: 0.5,
            min_blocks: 50,
            min_actors: 10,
            pause_after: 1,
        }
    }
}

impl GuardConfig {
    /// Every problem with the settings.
    pub fn check(&self) -> Vec<String> {
        let mut e = Vec::new();
        if self.window < 10 {
            e.push("[lifecycle.guard] window: at least 10 events".to_string());
        }
        if !(self.multiple > 1.0 && self.multiple.is_finite()) {
            e.push("[lifecycle.guard] multiple: a number above 1".into());
        }
        if !(self.prior_rate > 0.0 && self.prior_rate <= 1.0) {
            e.push("[lifecycle.guard] prior_rate: in (0, 1]".into());
        }
        if !(self.max_block_rate > 0.0 && self.max_block_rate <= 1.0) {
            e.push("[lifecycle.guard] max_block_rate: in (0, 1]".into());
        }
        if !(1..=1_000_000).contains(&self.pause_after) {
            e.push("[lifecycle.guard] pause_after: 1 to 1,000,000 decisions".into());
        }
        e
    }
}

/// Why the guard tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The rule's own rate jumped.
    HitRate,
    /// The checkpoint's block rate passed its cap; the rule blocked the most within the window.
    BlockRate,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::HitRate => "hit_rate",
            Cause::BlockRate => "block_rate",
        }
    }
}

/// A rule the guard would pause, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    pub rule: String,
    pub checkpoint: String,
    pub cause: Cause,
    pub window_hits: u32,
    pub window_events: u32,
    pub window_blocks: u32,
    pub rate: f64,
    pub baseline: f64,
    /// The checkpoint's events the guard had seen when it tripped.
    pub events_seen: u64,
    /// Distinct actors among the rule's last `min_hits` hits.
    #[serde(default)]
    pub actors: u32,
    /// The decision (counted over every checkpoint, in log order, from 1) from which the rule is
    /// paused: the tripping one's plus `pause_after` (0 in a pause recorded before the lag).
    #[serde(default)]
    pub paused_from: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Slice {
    events: u32,
    blocks: u32,
    #[serde(serialize_with = "sorted")]
    hits: HashMap<String, u32>,
    #[serde(serialize_with = "sorted")]
    block_hits: HashMap<String, u32>,
}

/// A map written in key order, so that the same state always encodes to the same bytes.
fn sorted<S: Serializer, V: Serialize>(m: &HashMap<String, V>, s: S) -> Result<S::Ok, S::Error> {
    m.iter().collect::<BTreeMap<_, _>>().serialize(s)
}

/// A rule's hits over the events it was watched for (slices that left the window).
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    pub hits: u64,
    pub events: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    cur: Slice,
    past: VecDeque<Slice>,
    /// Sums over `past` and `cur`.
    win: Slice,
    #[serde(serialize_with = "sorted")]
    learned: HashMap<String, Learned>,
    /// The checkpoint's event count when each rule first fired here: a rule's rate is over the
    /// events since then when that is shorter than the window, so a new rule that fires on every
    /// event is not diluted by the window's earlier events.
    #[serde(serialize_with = "sorted")]
    first: HashMap<String, u64>,
    /// The actors (digests) of each rule's last `min_hits` hits.
    #[serde(serialize_with = "sorted")]
    recent: HashMap<String, VecDeque<u128>>,
    seen: u64,
    /// The block-rate cap is quiet until this event count: after it paused a rule, the window still
    /// holds that rule's blocks, and must roll over before the cap judges the checkpoint again.
    cap_quiet_until: u64,
}

/// The guard's state: per checkpoint, the window and what each rule learned.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Guard {
    pub cfg: GuardConfig,
    cps: HashMap<String, Checkpoint>,
    /// Rules tripped and not resumed, with their trip: not watched (their hits are shadow hits now),
    /// and paused from the trip's `paused_from`.
    tripped: BTreeMap<String, Trip>,
    /// The decisions observed, every checkpoint's.
    decided: u64,
}

/// What a guard has seen, to be kept in a snapshot beside the feature state (a server restarted
/// from it, or a cluster node started from another node's, watches on from the same point instead
/// of from the decisions its own log still holds). It holds the settings it was learned under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardState {
    cfg: GuardConfig,
    cps: BTreeMap<String, Checkpoint>,
    tripped: BTreeMap<String, Trip>,
    decided: u64,
}

/// A guard's state as layout 1 kept it (before `pause_after`): what snapshots written before it
/// hold, read as [`GuardState`] by [`GuardStateV1::current`] (frozen: never change it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardStateV1 {
    cfg: GuardConfigV1,
    cps: BTreeMap<String, Checkpoint>,
    tripped: BTreeMap<String, TripV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GuardConfigV1 {
    enabled: bool,
    window: u32,
    min_hits: u32,
    multiple: f64,
    prior_rate: f64,
    learn_events: u64,
    max_block_rate: f64,
    min_blocks: u32,
    min_actors: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TripV1 {
    rule: String,
    checkpoint: String,
    cause: Cause,
    window_hits: u32,
    window_events: u32,
    window_blocks: u32,
    rate: f64,
    baseline: f64,
    events_seen: u64,
    actors: u32,
}

impl GuardStateV1 {
    /// The same state in this release's layout: learned at `pause_after = 1` (the only lag there
    /// was), its rules paused already (`paused_from` 0), no decision counted yet (a count only
    /// compared with later ones of the same node).
    pub fn current(self) -> GuardState {
        let c = self.cfg;
        GuardState {
            cfg: GuardConfig {
                enabled: c.enabled,
                window: c.window,
                min_hits: c.min_hits,
                multiple: c.multiple,
                prior_rate: c.prior_rate,
                learn_events: c.learn_events,
                max_block_rate: c.max_block_rate,
                min_blocks: c.min_blocks,
                min_actors: c.min_actors,
                pause_after: 1,
            },
            cps: self.cps,
            tripped: self
                .tripped
                .into_iter()
                .map(|(rule, t)| {
                    let trip = Trip {
                        rule: t.rule,
                        checkpoint: t.checkpoint,
                        cause: t.cause,
                        window_hits: t.window_hits,
                        window_events: t.window_events,
                        window_blocks: t.window_blocks,
                        rate: t.rate,
                        baseline: t.baseline,
                        events_seen: t.events_seen,
                        actors: t.actors,
                        paused_from: 0,
                    };
                    (rule, trip)
                })
                .collect(),
            decided: 0,
        }
    }
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            ..Default::default()
        }
    }

    /// A copy of what the guard has seen (its settings with it).
    pub fn state(&self) -> GuardState {
        GuardState {
            cfg: self.cfg.clone(),
            cps: self
                .cps
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tripped: self.tripped.clone(),
            decided: self.decided,
        }
    }

    /// A guard that goes on from `state`, if it was learned under the settings `cfg` (other
    /// settings would have made other windows and trips: `None`, and the caller starts afresh).
    pub fn from_state(cfg: &GuardConfig, state: GuardState) -> Option<Guard> {
        (state.cfg == *cfg).then(|| Guard {
            cfg: state.cfg,
            cps: state.cps.into_iter().collect(),
            tripped: state.tripped,
            decided: state.decided,
        })
    }

    fn slice_len(&self) -> u32 {
        (self.cfg.window / 10).max(1)
    }

    /// A rule's baseline: its own rate once learned, else the prior.
    pub fn baseline(&self, checkpoint: &str, rule: &str) -> f64 {
        let l = self
            .cps
            .get(checkpoint)
            .and_then(|c| c.learned.get(rule))
            .copied()
            .unwrap_or_default();
        if l.events >= self.cfg.learn_events && l.events > 0 {
            l.hits as f64 / l.events as f64
        } else {
            self.cfg.prior_rate
        }
    }

    /// Takes one decision of `checkpoint`: whether it blocked, and the enforced rules that fired
    /// with whether each blocks. Returns the rules to pause now (each at most once until resumed).
    pub fn observe(
        &mut self,
        checkpoint: &str,
        actor: u128,
        blocked: bool,
        fired: &[(&str, bool)],
    ) -> Vec<Trip> {
        if !self.cfg.enabled {
            return Vec::new();
        }
        self.decided += 1;
        let paused_from = self.decided.saturating_add(self.cfg.pause_after);
        let slice_len = self.slice_len();
        let keep = (self.cfg.window / slice_len).max(1) as usize;
        // Keys are allocated once, when first seen: this runs for every live decision.
        if !self.cps.contains_key(checkpoint) {
            self.cps
                .insert(checkpoint.to_string(), Checkpoint::default());
        }
        let Some(cp) = self.cps.get_mut(checkpoint) else {
            return Vec::new();
        };
        cp.seen += 1;
        cp.cur.events += 1;
        cp.win.events += 1;
        if blocked {
            cp.cur.blocks += 1;
            cp.win.blocks += 1;
        }
        let mut hit: Vec<&str> = Vec::new();
        for &(rule, blocks) in fired {
            if self.tripped.contains_key(rule) {
                continue;
            }
            bump(&mut cp.cur.hits, rule);
            bump(&mut cp.win.hits, rule);
            if !cp.learned.contains_key(rule) {
                cp.learned.insert(rule.to_string(), Learned::default());
                cp.first.insert(rule.to_string(), cp.seen);
                cp.recent.insert(rule.to_string(), VecDeque::new());
            }
            if blocks {
                bump(&mut cp.cur.block_hits, rule);
                bump(&mut cp.win.block_hits, rule);
            }
            if let Some(r) = cp.recent.get_mut(rule) {
                r.push_back(actor);
                if r.len() > self.cfg.min_hits.max(1) as usize {
                    r.pop_front();
                }
            }
            hit.push(rule);
        }
        let mut trips = Vec::new();
        let (win_events, win_blocks, seen) = (cp.win.events, cp.win.blocks, cp.seen);
        let distinct = |recent: &HashMap<String, VecDeque<u128>>, rule: &str| -> u32 {
            let mut a: Vec<u128> = recent
                .get(rule)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default();
            a.sort_unstable();
            a.dedup();
            a.len() as u32
        };
        for rule in hit {
            let h = cp.win.hits.get(rule).copied().unwrap_or(0);
            if h < self.cfg.min_hits {
                continue;
            }
            let l = cp.learned.get(rule).copied().unwrap_or_default();
            let base = if l.events >= self.cfg.learn_events && l.events > 0 {
                l.hits as f64 / l.events as f64
            } else {
                self.cfg.prior_rate
            };
            let since = cp.first.get(rule).map_or(u64::MAX, |f| seen - f + 1);
            let events = (win_events as u64).min(since) as u32;
            let rate = h as f64 / events.max(1) as f64;
            // Not over (NaN included): no trip.
            if rate.partial_cmp(&(self.cfg.multiple * base)) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            // Counted only for a rule over its rate (a copy and a sort of its last hits' actors):
            // most rules that fire are not, and this runs for every live decision.
            let actors = distinct(&cp.recent, rule);
            if actors >= self.cfg.min_actors {
                trips.push(Trip {
                    rule: rule.to_string(),
                    checkpoint: checkpoint.to_string(),
                    cause: Cause::HitRate,
                    window_hits: h,
                    window_events: events,
                    window_blocks: win_blocks,
                    rate,
                    baseline: base,
                    events_seen: seen,
                    actors,
                    paused_from,
                });
            }
        }
        if trips.is_empty()
            && seen >= cp.cap_quiet_until
            && win_blocks >= self.cfg.min_blocks
            && win_blocks as f64 / win_events as f64 > self.cfg.max_block_rate
        {
            // The enforced rule that blocked the most in the window (ties: by name).
            if let Some((rule, &h)) = cp
                .win
                .block_hits
                .iter()
                .filter(|(r, &h)| h > 0 && !self.tripped.contains_key(*r))
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .filter(|(r, _)| distinct(&cp.recent, r) >= self.cfg.min_actors)
            {
                let actors = distinct(&cp.recent, rule);
                trips.push(Trip {
                    rule: rule.clone(),
                    checkpoint: checkpoint.to_string(),
                    cause: Cause::BlockRate,
                    window_hits: h,
                    window_events: win_events,
                    window_blocks: win_blocks,
                    rate: win_blocks as f64 / win_events as f64,
                    baseline: self.cfg.max_block_rate,
                    events_seen: seen,
                    actors,
                    paused_from,
                });
                cp.cap_quiet_until = seen + self.cfg.window as u64;
            }
        }
        if !trips.is_empty() {
            // The window still holds the paused rule's blocks: the cap waits for it to roll over.
            cp.cap_quiet_until = seen + self.cfg.window as u64;
        }
        if cp.cur.events >= slice_len {
            let done = std::mem::take(&mut cp.cur);
            cp.past.push_back(done);
            if cp.past.len() >= keep {
                if let Some(old) = cp.past.pop_front() {
                    cp.win.events -= old.events;
                    cp.win.blocks -= old.blocks;
                    for (r, h) in &old.hits {
                        if let Some(w) = cp.win.hits.get_mut(r) {
                            *w -= h;
                        }
                    }
                    for (r, h) in &old.block_hits {
                        if let Some(w) = cp.win.block_hits.get_mut(r) {
                            *w -= h;
                        }
                    }
                    cp.win.hits.retain(|_, h| *h > 0);
                    cp.win.block_hits.retain(|_, h| *h > 0);
                    // What left the window is learned by every rule watched at this checkpoint.
                    for (r, l) in cp.learned.iter_mut() {
                        l.events += old.events as u64;
                        l.hits += old.hits.get(r).copied().unwrap_or(0) as u64;
                    }
                }
            }
        }
        for t in &trips {
            self.tripped.insert(t.rule.clone(), t.clone());
        }
        trips
    }

    /// A paused rule is watched again (a person resumed it); its window hits are forgotten.
    pub fn resume(&mut self, rule: &str) {
        self.tripped.remove(rule);
        for cp in self.cps.values_mut() {
            if let Some(r) = cp.recent.get_mut(rule) {
                r.clear();
            }
            cp.win.hits.remove(rule);
            cp.win.block_hits.remove(rule);
            cp.cur.hits.remove(rule);
            cp.cur.block_hits.remove(rule);
            for s in &mut cp.past {
                s.hits.remove(rule);
                s.block_hits.remove(rule);
            }
        }
    }

    /// Pauses a rule by a trip this guard did not make (one the store holds that a guard rebuilt
    /// under other settings lost): from `t.paused_from`, not watched until resumed.
    pub fn pause(&mut self, t: &Trip) {
        self.tripped
            .entry(t.rule.clone())
            .or_insert_with(|| t.clone());
    }

    /// The rules tripped and not resumed, with the trip that paused each (or will: see
    /// [`Guard::paused`]).
    pub fn tripped(&self) -> impl Iterator<Item = &Trip> {
        self.tripped.values()
    }

    /// The rules paused for the next decision: tripped, and their `paused_from` reached.
    pub fn paused(&self) -> impl Iterator<Item = &str> {
        let next = self.decided + 1;
        self.tripped
            .values()
            .filter(move |t| t.paused_from <= next)
            .map(|t| t.rule.as_str())
    }

    /// Whether a rule is paused from the next decision on and was not for the last one (the
    /// policies must change before the next decision).
    pub fn pause_starts(&self) -> bool {
        let next = self.decided + 1;
        self.tripped.values().any(|t| t.paused_from == next)
    }

    /// What every rule learned: `(checkpoint, rule, learned)`, sorted.
    pub fn learned(&self) -> Vec<(String, String, Learned)> {
        let mut v: Vec<_> = self
            .cps
            .iter()
            .flat_map(|(c, cp)| {
                cp.learned
                    .iter()
                    .map(move |(r, l)| (c.clone(), r.clone(), *l))
            })
            .collect();
        v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        v
    }
}

/// Adds one to `k`'s count, allocating the key only the first time.
fn bump(map: &mut HashMap<String, u32>, k: &str) {
    match map.get_mut(k) {
        Some(v) => *v += 1,
        None => {
            map.insert(k.to_string(), 1);
        }
    }
}
