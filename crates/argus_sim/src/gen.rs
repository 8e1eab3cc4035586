//! The world's configuration and the generator that streams it, day by day, in event-time order.

use crate::event::*;
use crate::honest::Honest;
use crate::scenarios::{Ctx, Knobs, SCENARIOS};
use crate::world::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// `argus simulate`'s configuration (TOML; every key optional).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub seed: u64,
    pub days: u32,
    /// First day, `YYYY-MM-DD` (UTC midnight).
    pub start: String,
    /// Honest shoppers (seller staff and attackers come on top).
    pub users: u32,
    /// Days of honest-only history before `start`, so that features have a past when measuring
    /// begins (truth lines mark them `"warmup":true`; the catch report skips them).
    pub warmup_days: u32,
    /// Multiplies every scenario's number of campaigns.
    pub attack_scale: f64,
    /// Sets every scenario's camouflage (0..=1) when present.
    pub camouflage: Option<f64>,
    /// Per-scenario overrides, by scenario name.
    pub scenarios: BTreeMap<String, KnobsPatch>,
    /// Write each `order.create`'s ground truth into the event as a delayed-label column `fraud`
    /// (1 = an attack's order), for training models; needs a configuration that declares it
    /// (`examples/simulator/labels.toml`). Off by default: the built-in schema has no such field.
    pub labels: bool,
    /// Write review text into `review.create` as `text` (honest reviews, and brushing rings' copies or
    /// paraphrases of their templates: `argus_sim::text`), and sellers' listings as `listing.create`
    /// events with their descriptions (honest sellers' own, brushing sellers' copies or paraphrases
    /// of one shared listing kit); needs a configuration that declares both
    /// (`examples/simulator/text.toml`). Off by default: the built-in schema has neither.
    pub text: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            days: 30,
            start: "2026-10-01".into(),
            users: 20_000,
            warmup_days: 14,
            attack_scale: 1.0,
            camouflage: None,
            scenarios: BTreeMap::new(),
            labels: false,
            text: false,
        }
    }
}

/// A partial [`Knobs`]: what is given replaces the scenario's default.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobsPatch {
    pub enabled: Option<bool>,
    pub campaigns: Option<f64>,
    pub size: Option<u32>,
    pub intensity: Option<f64>,
    pub camouflage: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("start `{0}` is not a date (YYYY-MM-DD)")]
    Start(String),
    #[error("scenario `{0}`: {1}")]
    Scenario(String, String),
    #[error("{0} must be {1}")]
    Range(&'static str, &'static str),
}

impl SimConfig {
    /// Checks everything before anything is generated or written.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.days == 0 || self.days > 3660 {
            return Err(SimError::Range("days", "between 1 and 3660"));
        }
        if self.users < 100 || self.users > 50_000_000 {
            return Err(SimError::Range("users", "between 100 and 50,000,000"));
        }
        if self.warmup_days > 365 {
            return Err(SimError::Range("warmup_days", "at most 365"));
        }
        if !(self.attack_scale >= 0.0 && self.attack_scale <= 1000.0) {
            return Err(SimError::Range("attack_scale", "between 0 and 1000"));
        }
        let start = self.start_ms()?;
        let first = start - self.warmup_days as i64 * argus_event::time::DAY;
        let last = start + self.days as i64 * argus_event::time::DAY;
        // Four-digit years, with room for labels that arrive after the last day.
        if first < argus_event::time::days_from_civil(1971, 1, 1) * argus_event::time::DAY
            || last > argus_event::time::days_from_civil(9000, 1, 1) * argus_event::time::DAY
        {
            return Err(SimError::Range(
                "start, warmup_days and days",
                "within the years 1971 to 9000",
            ));
        }
        for (s, k) in self.knobs()? {
            let campaigns = k.campaigns * self.users as f64 / 20_000.0 * self.days as f64 / 30.0
                * self.attack_scale;
            if k.enabled && campaigns > 100_000.0 {
                return Err(SimError::Scenario(
                    s.name().into(),
                    format!("would run {campaigns:.0} campaigns; at most 100,000"),
                ));
            }
        }
        Ok(())
    }

    /// Every scenario's knobs: the defaults, then the global camouflage, then each scenario's patch.
    pub fn knobs(&self) -> Result<Vec<(Scenario, Knobs)>, SimError> {
        for name in self.scenarios.keys() {
            if !SCENARIOS.iter().any(|(s, _, _)| s.name() == name) {
                let known: Vec<_> = SCENARIOS.iter().map(|(s, _, _)| s.name()).collect();
                return Err(SimError::Scenario(
                    name.clone(),
                    format!("unknown (known: {})", known.join(", ")),
                ));
            }
        }
        let mut out = Vec::new();
        for (s, _, default) in SCENARIOS {
            let mut k = default;
            if let Some(c) = self.camouflage {
                k.camouflage = c;
            }
            if let Some(p) = self.scenarios.get(s.name()) {
                k.enabled = p.enabled.unwrap_or(k.enabled);
                k.campaigns = p.campaigns.unwrap_or(k.campaigns);
                k.size = p.size.unwrap_or(k.size);
                k.intensity = p.intensity.unwrap_or(k.intensity);
                k.camouflage = p.camouflage.unwrap_or(k.camouflage);
            }
            if !(0.0..=1.0).contains(&k.camouflage) {
                return Err(SimError::Range("camouflage", "between 0 and 1"));
            }
            if !((0.0..=10_000.0).contains(&k.campaigns)
                && k.intensity > 0.0
                && k.intensity <= 100.0)
            {
                return Err(SimError::Range(
                    "campaigns and intensity",
                    "campaigns in 0..=10,000 and intensity in (0, 100]",
                ));
            }
            if k.size == 0 || k.size > 100_000 {
                return Err(SimError::Range("size", "between 1 and 100,000"));
            }
            out.push((s, k));
        }
        Ok(out)
    }

    fn start_ms(&self) -> Result<i64, SimError> {
        argus_event::time::parse_datetime(&format!("{}T00:00:00Z", self.start))
            .ok_or_else(|| SimError::Start(self.start.clone()))
    }
}

/// What a run produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub by_type: BTreeMap<&'static str, u64>,
    pub by_scenario: BTreeMap<&'static str, u64>,
    /// Campaigns per scenario.
    pub campaigns: BTreeMap<&'static str, u32>,
    pub users: u32,
    pub sellers: u32,
    pub items: u32,
}

/// Streams a world: attacks are laid out when it is built, honest activity one day at a time; each call
/// of [`Generator::next_day`] returns one day's events sorted by (time, id).
pub struct Generator {
    labels: bool,
    text: bool,
    world: World,
    buckets: Buckets,
    honest: Honest,
    day: u32,
    pub summary: Summary,
}

impl Generator {
    pub fn new(cfg: &SimConfig) -> Result<Generator, SimError> {
        cfg.validate()?;
        let knobs = cfg.knobs()?;
        let start = cfg.start_ms()?;
        let mut world = World::new(cfg.seed, start, cfg.days, cfg.users);
        world.text = cfg.text;
        let first = start - cfg.warmup_days as i64 * argus_event::time::DAY;
        let mut buckets = Buckets {
            start: first,
            days: (0..cfg.days + cfg.warmup_days)
                .map(|_| Vec::new())
                .collect(),
            next_event: 0,
            next_listing: 0,
            measured: start,
        };
        let mut summary = Summary::default();
        for ((scenario, run, _), (_, k)) in SCENARIOS.iter().zip(knobs) {
            let before = world.next_campaign;
            let mut cx = Ctx::new(&mut world, &mut buckets, *scenario, k, cfg.attack_scale);
            run(&mut cx);
            summary
                .campaigns
                .insert(scenario.name(), world.next_campaign - before);
        }
        summary.users = world.users.len() as u32 - 1;
        summary.sellers = world.sellers.len() as u32 - 1;
        summary.items = world.items.len() as u32 - 1;
        Ok(Generator {
            labels: cfg.labels,
            text: cfg.text,
            world,
            buckets,
            honest: Honest::default(),
            day: 0,
            summary,
        })
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn tables(&self) -> &Tables {
        &self.world.tables
    }

    /// The next day's events, or `None` after the last day.
    pub fn next_day(&mut self) -> Option<Vec<Ev>> {
        if self.day as usize >= self.buckets.days.len() {
            return None;
        }
        let day0 = self.buckets.start + self.day as i64 * argus_event::time::DAY;
        self.honest.day(&mut self.world, &mut self.buckets, day0);
        let mut evs = std::mem::take(&mut self.buckets.days[self.day as usize]);
        self.day += 1;
        evs.sort_unstable_by_key(|e| (e.t, e.id));
        self.summary.events += evs.len() as u64;
        for e in &evs {
            *self.summary.by_type.entry(e.kind.name()).or_default() += 1;
            *self
                .summary
                .by_scenario
                .entry(e.truth.scenario.name())
                .or_default() += 1;
        }
        Some(evs)
    }

    /// Renders one day: events as NDJSON into `events`, truth lines into `truth`.
    pub fn render(&self, evs: &[Ev], events: &mut Vec<u8>, truth: Option<&mut Vec<u8>>) {
        let mut w = Writer::new(&self.world.tables);
        w.labels = self.labels;
        w.text = self.text;
        std::mem::swap(&mut w.buf, events);
        for e in evs {
            w.write_event(e);
        }
        std::mem::swap(&mut w.buf, events);
        if let Some(t) = truth {
            std::mem::swap(&mut w.buf, t);
            for e in evs {
                w.write_truth(e);
            }
            std::mem::swap(&mut w.buf, t);
        }
    }
}

/// Generates the whole world into `events` (and `truth`), day by day.
pub fn generate(
    cfg: &SimConfig,
    events: &mut dyn Write,
    mut truth: Option<&mut dyn Write>,
) -> Result<Summary, GenerateError> {
    let mut g = Generator::new(cfg)?;
    let mut eb = Vec::with_capacity(1 << 24);
    let mut tb = Vec::new();
    while let Some(evs) = g.next_day() {
        eb.clear();
        tb.clear();
        g.render(&evs, &mut eb, truth.as_ref().map(|_| &mut tb));
        events.write_all(&eb)?;
        if let Some(t) = truth.as_deref_mut() {
            t.write_all(&tb)?;
        }
    }
    events.flush()?;
    if let Some(t) = truth {
        t.flush()?;
    }
    Ok(g.summary)
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Config(#[from] SimError),
    #[error("writing: {0}")]
    Io(#[from] io::Error),
}
