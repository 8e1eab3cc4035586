//! The catch report: decisions joined with ground truth, per risk area and scenario — recall of events,
//! accounts and campaigns, precision, money at risk against money stopped, time to first detection,
//! and the friction honest users feel. The engine never sees the truth; this module reads it beside
//! the decisions, matched by event id.

use crate::event::{Role, Scenario, Truth};
use argus_event::time::{DAY, HOUR};
use argus_event::TypeId;
use argus_policy::{Action, Decision};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead};

/// One truth record, as the report needs it.
#[derive(Clone, Debug)]
pub struct TruthRec {
    pub id: String,
    pub actor: String,
    pub truth: Truth,
}

/// Where truth records come from, in the order of the events.
pub trait TruthSource {
    fn next_truth(&mut self) -> io::Result<Option<TruthRec>>;
}

/// A truth file (`argus simulate`'s `*.truth.ndjson`).
pub struct TruthReader<R: BufRead> {
    r: R,
    line: String,
    n: u64,
}

impl<R: BufRead> TruthReader<R> {
    pub fn new(r: R) -> Self {
        TruthReader {
            r,
            line: String::new(),
            n: 0,
        }
    }
}

#[derive(serde::Deserialize)]
struct TruthLine {
    id: String,
    actor: String,
    scenario: String,
    campaign: u32,
    role: String,
    #[serde(default)]
    money: Option<String>,
    #[serde(default)]
    money_key: Option<String>,
    #[serde(default)]
    warmup: bool,
}

impl<R: BufRead> TruthSource for TruthReader<R> {
    fn next_truth(&mut self) -> io::Result<Option<TruthRec>> {
        self.line.clear();
        if self.r.read_line(&mut self.line)? == 0 {
            return Ok(None);
        }
        self.n += 1;
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        let t: TruthLine = serde_json::from_str(self.line.trim_end())
            .map_err(|e| bad(format!("truth line {}: {e}", self.n)))?;
        let scenario = Scenario::from_name(&t.scenario).ok_or_else(|| {
            bad(format!(
                "truth line {}: unknown scenario `{}`",
                self.n, t.scenario
            ))
        })?;
        let role = Role::from_name(&t.role)
            .ok_or_else(|| bad(format!("truth line {}: unknown role `{}`", self.n, t.role)))?;
        let money = match t.money {
            Some(m) => match m.parse::<f64>() {
                Ok(v) if v.is_finite() && v.abs() <= 1e12 => (v * 100.0).round() as i64,
                _ => {
                    return Err(bad(format!(
                        "truth line {}: money `{m}` is not an amount (at most 1e12)",
                        self.n
                    )))
                }
            },
            None => 0,
        };
        let money_key = match t.money_key.as_deref() {
            None => 0,
            Some(k) => k
                .strip_prefix('o')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad(format!("truth line {}: money_key `{k}`", self.n)))?,
        };
        Ok(Some(TruthRec {
            id: t.id,
            actor: t.actor,
            truth: Truth {
                scenario,
                role,
                campaign: t.campaign,
                money,
                money_key,
                warmup: t.warmup,
            },
        }))
    }
}

/// Truth handed over in process (the one-command `argus simulate --report`).
impl TruthSource for std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<TruthRec>>> {
    fn next_truth(&mut self) -> io::Result<Option<TruthRec>> {
        Ok(self.borrow_mut().pop_front())
    }
}

#[derive(Default)]
struct AccountAcc {
    caught_at: Option<i64>,
    blocked: bool,
}

#[derive(Default)]
struct ScenarioAcc {
    decided: u64,
    caught: u64,
    blocked: u64,
    accounts: HashMap<String, AccountAcc>,
    /// campaign → (first event time, first caught time)
    campaigns: BTreeMap<u32, (i64, Option<i64>)>,
    /// What is at stake, once per order (or per event): amount and the strongest action met.
    money: HashMap<String, (i64, Action)>,
}

impl ScenarioAcc {
    /// (at risk, blocked, held for review), in cents.
    fn money(&self) -> (i64, i64, i64) {
        let mut m = (0i64, 0i64, 0i64);
        for &(amount, worst) in self.money.values() {
            m.0 = m.0.saturating_add(amount);
            match worst {
                Action::Block => m.1 = m.1.saturating_add(amount),
                Action::Review => m.2 = m.2.saturating_add(amount),
                _ => {}
            }
        }
        m
    }
}

#[derive(Default)]
struct AreaPrecision {
    flagged: u64,
    attack: u64,
    same_area: u64,
}

/// Accumulates decisions against truth. Use as a replay [`argus_engine::RowSink`].
pub struct CatchReport<S: TruthSource> {
    source: S,
    current: Option<TruthRec>,
    current_time: i64,
    /// Start of the measured period: the first honest event after the warm-up.
    start: Option<i64>,
    /// The first non-warm-up event of any kind (the start when there is no honest event).
    first_any: Option<i64>,
    end: i64,
    scenarios: BTreeMap<Scenario, ScenarioAcc>,
    honest_users: HashMap<String, Action>,
    honest_first_flag: HashMap<String, i64>,
    honest_decisions: u64,
    honest_flagged: BTreeMap<&'static str, u64>,
    areas: BTreeMap<String, AreaPrecision>,
    /// Flagged actors, and whether any of their flagged events was an attack (account precision).
    flagged_actors: HashMap<String, bool>,
    skipped_truth: u64,
    /// rule → (attack events, honest events, honest users)
    rules: BTreeMap<String, (u64, u64, HashSet<String>)>,
    /// Graph findings: accounts named, by detector kind (`cluster`, `block:orders`, …), and the
    /// number of findings per detector.
    found: BTreeMap<String, (u64, HashSet<String>)>,
}

impl<S: TruthSource> CatchReport<S> {
    pub fn new(source: S) -> Self {
        CatchReport {
            source,
            current: None,
            current_time: 0,
            start: None,
            first_any: None,
            end: i64::MIN,
            scenarios: BTreeMap::new(),
            honest_users: HashMap::new(),
            honest_first_flag: HashMap::new(),
            honest_decisions: 0,
            honest_flagged: BTreeMap::new(),
            areas: BTreeMap::new(),
            flagged_actors: HashMap::new(),
            skipped_truth: 0,
            rules: BTreeMap::new(),
            found: BTreeMap::new(),
        }
    }

    /// Advances the truth stream to the record of event `id` (records of refused events are skipped).
    fn seek(&mut self, id: &str) -> io::Result<()> {
        loop {
            match self.source.next_truth()? {
                Some(t) if t.id == id => {
                    self.current = Some(t);
                    return Ok(());
                }
                Some(_) => self.skipped_truth += 1,
                None => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("no truth record for event `{id}`: the truth file does not belong to these events")));
                }
            }
        }
    }

    fn on_event(&mut self, id: &str, time: i64) -> io::Result<()> {
        self.seek(id)?;
        self.current_time = time;
        let Some(t) = self.current.as_ref() else {
            return Ok(());
        };
        if t.truth.warmup {
            return Ok(());
        }
        // The measured period starts with the first honest event after the warm-up (attacks may
        // prepare earlier: their events count, on day 0 of the timeline).
        if self.start.is_none() && t.truth.scenario == Scenario::Honest {
            self.start = Some(time);
        }
        self.first_any.get_or_insert(time);
        self.end = self.end.max(time);
        if t.truth.scenario != Scenario::Honest && t.truth.role != Role::Label {
            let acc = self.scenarios.entry(t.truth.scenario).or_default();
            acc.campaigns
                .entry(t.truth.campaign)
                .or_insert((time, None));
            if t.truth.role.is_attack_account() {
                acc.accounts.entry(t.actor.clone()).or_default();
            }
        }
        Ok(())
    }

    fn on_decision(&mut self, d: &Decision) {
        // Labels are not behaviour: a pack that decides them catches nothing by it.
        let Some(t) = self
            .current
            .as_ref()
            .filter(|t| t.id == d.event_id && !t.truth.warmup && t.truth.role != Role::Label)
        else {
            return;
        };
        let time = self.current_time;
        let flagged = d.action != Action::Allow;
        if flagged {
            *self.flagged_actors.entry(t.actor.clone()).or_default() |=
                t.truth.scenario != Scenario::Honest;
        }
        for f in d.fired.iter().filter(|f| f.action != Action::Allow) {
            let r = self.rules.entry(f.rule.clone()).or_default();
            if t.truth.scenario == Scenario::Honest {
                r.1 += 1;
                r.2.insert(t.actor.clone());
            } else {
                r.0 += 1;
            }
        }
        if flagged {
            let mut areas: Vec<&str> = d
                .fired
                .iter()
                .flat_map(|f| f.tags.iter().map(String::as_str))
                .collect();
            areas.sort_unstable();
            areas.dedup();
            for a in areas {
                let p = self.areas.entry(a.to_string()).or_default();
                p.flagged += 1;
                if t.truth.scenario != Scenario::Honest {
                    p.attack += 1;
                    if t.truth.scenario.area() == a {
                        p.same_area += 1;
                    }
                }
            }
        }
        if t.truth.scenario == Scenario::Honest {
            self.honest_decisions += 1;
            let worst = self
                .honest_users
                .entry(t.actor.clone())
                .or_insert(Action::Allow);
            if d.action > *worst {
                *worst = d.action;
            }
            if flagged {
                *self
                    .honest_flagged
                    .entry(action_name(d.action))
                    .or_default() += 1;
                self.honest_first_flag
                    .entry(t.actor.clone())
                    .or_insert(time);
            }
            return;
        }
        let acc = self.scenarios.entry(t.truth.scenario).or_default();
        acc.decided += 1;
        if t.truth.money != 0 {
            let key = if t.truth.money_key != 0 {
                format!("o{}", t.truth.money_key)
            } else {
                t.id.clone()
            };
            let e = acc
                .money
                .entry(key)
                .or_insert((t.truth.money, Action::Allow));
            e.1 = e.1.max(d.action);
        }
        if flagged {
            acc.caught += 1;
            let c = acc
                .campaigns
                .entry(t.truth.campaign)
                .or_insert((time, None));
            c.1.get_or_insert(time);
            if t.truth.role.is_attack_account() {
                let a = acc.accounts.entry(t.actor.clone()).or_default();
                a.caught_at.get_or_insert(time);
                a.blocked |= d.action == Action::Block;
            }
        }
        if d.action == Action::Block {
            acc.blocked += 1;
        }
    }

    /// The finished report.
    pub fn finish(&self) -> Report {
        let start = self.start.or(self.first_any).unwrap_or(0);
        let days = ((self.end - start).max(0) / DAY + 1) as usize;
        let ratio = |a: u64, b: u64| {
            if b == 0 {
                None
            } else {
                Some(a as f64 / b as f64)
            }
        };
        let mut scenarios = Vec::new();
        let mut by_area: BTreeMap<&'static str, (u64, u64, i64, i64, i64)> = BTreeMap::new();
        let mut timeline = Vec::new();
        for (s, acc) in &self.scenarios {
            let accounts = acc.accounts.len() as u64;
            let caught_accounts = acc
                .accounts
                .values()
                .filter(|a| a.caught_at.is_some())
                .count() as u64;
            let campaigns = acc.campaigns.len() as u64;
            let detected = acc.campaigns.values().filter(|c| c.1.is_some()).count() as u64;
            let mut ttd: Vec<f64> = acc
                .campaigns
                .values()
                .filter_map(|c| c.1.map(|x| (x - c.0) as f64 / HOUR as f64))
                .collect();
            ttd.sort_by(f64::total_cmp);
            let mut per_day = vec![0u64; days];
            for a in acc.accounts.values() {
                if let Some(t) = a.caught_at {
                    per_day[day_index(t, start, days)] += 1;
                }
            }
            let mut cum = 0;
            let curve: Vec<f64> = per_day
                .iter()
                .map(|n| {
                    cum += n;
                    cum as f64 / accounts.max(1) as f64
                })
                .collect();
            timeline.push(Series {
                name: s.name().to_string(),
                values: curve,
            });
            let (risk, blocked, held) = acc.money();
            let e = by_area.entry(s.area()).or_default();
            e.0 += accounts;
            e.1 += caught_accounts;
            e.2 = e.2.saturating_add(risk);
            e.3 = e.3.saturating_add(blocked);
            e.4 = e.4.saturating_add(held);
            scenarios.push(ScenarioReport {
                scenario: s.name(),
                area: s.area(),
                campaigns,
                campaigns_detected: detected,
                campaign_recall: ratio(detected, campaigns),
                accounts,
                accounts_caught: caught_accounts,
                account_recall: ratio(caught_accounts, accounts),
                accounts_blocked: acc.accounts.values().filter(|a| a.blocked).count() as u64,
                decided_events: acc.decided,
                events_caught: acc.caught,
                events_blocked: acc.blocked,
                event_recall: ratio(acc.caught, acc.decided),
                money_at_risk: risk as f64 / 100.0,
                money_blocked: blocked as f64 / 100.0,
                money_held_for_review: held as f64 / 100.0,
                median_hours_to_detection: median(&ttd),
            });
        }
        let honest_users = self.honest_users.len() as u64;
        let count = |a: Action| self.honest_users.values().filter(|&&w| w == a).count() as u64;
        let friction_users = honest_users - count(Action::Allow);
        let friction = Friction {
            honest_users,
            users_with_friction: friction_users,
            rate: ratio(friction_users, honest_users),
            worst_challenge: count(Action::Challenge),
            worst_review: count(Action::Review),
            worst_block: count(Action::Block),
            honest_decisions: self.honest_decisions,
            flagged_decisions: self.honest_flagged.clone(),
        };
        let mut fr_day = vec![0u64; days];
        for &t in self.honest_first_flag.values() {
            fr_day[day_index(t, start, days)] += 1;
        }
        let mut cum = 0;
        let friction_curve = fr_day
            .iter()
            .map(|n| {
                cum += n;
                cum as f64 / honest_users.max(1) as f64
            })
            .collect();
        let areas = by_area
            .into_iter()
            .map(|(area, (accounts, caught, risk, blocked, held))| {
                let p = self.areas.get(area);
                let recall = ratio(caught, accounts);
                AreaReport {
                    area,
                    accounts,
                    accounts_caught: caught,
                    account_recall: recall,
                    precision: p.and_then(|p| ratio(p.attack, p.flagged)),
                    flagged_by_area_rules: p.map_or(0, |p| p.flagged),
                    money_at_risk: risk as f64 / 100.0,
                    money_blocked: blocked as f64 / 100.0,
                    money_held_for_review: held as f64 / 100.0,
                    target_met: recall.is_some_and(|r| r >= TARGET_RECALL)
                        && friction.rate.is_some_and(|f| f <= TARGET_FRICTION),
                }
            })
            .collect();
        let mut rules: Vec<RuleFriction> = self
            .rules
            .iter()
            .map(|(name, (attack, honest, users))| RuleFriction {
                rule: name.clone(),
                attack_events: *attack,
                honest_events: *honest,
                honest_users: users.len() as u64,
            })
            .collect();
        rules.sort_by(|a, b| {
            b.honest_users
                .cmp(&a.honest_users)
                .then(a.rule.cmp(&b.rule))
        });
        let flagged_attack = self.flagged_actors.values().filter(|&&a| a).count() as u64;
        Report {
            start: argus_event::time::format_rfc3339(start),
            days: days as u32,
            areas,
            scenarios,
            friction,
            account_precision: ratio(flagged_attack, self.flagged_actors.len() as u64),
            target: format!("≥ {:.0} % of attack accounts caught in every risk area at ≤ {:.1} % honest-user friction", TARGET_RECALL * 100.0, TARGET_FRICTION * 100.0),
            timeline,
            friction_curve,
            unmatched_truth_records: self.skipped_truth,
            rules,
            findings: self.findings_report(),
        }
    }

    fn findings_report(&self) -> Option<FindingsReport> {
        if self.found.is_empty() {
            return None;
        }
        let attack: HashSet<&String> = self
            .scenarios
            .values()
            .flat_map(|a| a.accounts.keys())
            .collect();
        let detectors = self
            .found
            .iter()
            .map(|(d, (n, accs))| DetectorReport {
                detector: d.clone(),
                findings: *n,
                accounts: accs.len() as u64,
                attack_accounts: accs.iter().filter(|a| attack.contains(a)).count() as u64,
                honest_accounts: accs
                    .iter()
                    .filter(|a| self.honest_users.contains_key(*a))
                    .count() as u64,
            })
            .collect();
        let any: HashSet<&String> = self.found.values().flat_map(|(_, a)| a.iter()).collect();
        let scenarios = self
            .scenarios
            .iter()
            .map(|(s, acc)| {
                (
                    s.name().to_string(),
                    acc.accounts.len() as u64,
                    acc.accounts.keys().filter(|a| any.contains(a)).count() as u64,
                )
            })
            .collect();
        Some(FindingsReport {
            detectors,
            scenarios,
            honest_users: self.honest_users.len() as u64,
            honest_in_findings: self.honest_users.keys().filter(|a| any.contains(a)).count() as u64,
        })
    }
}

fn ratio_opt(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Median of sorted values (mean of the two middle ones for an even count).
fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Day of the measured period, clamped to the timeline.
fn day_index(t: i64, start: i64, days: usize) -> usize {
    ((t - start).max(0) / DAY).min(days as i64 - 1) as usize
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Challenge => "challenge",
        Action::Review => "review",
        Action::Block => "block",
    }
}

/// The issue's target for the rules-only starter pack.
pub const TARGET_RECALL: f64 = 0.80;
pub const TARGET_FRICTION: f64 = 0.005;

impl<S: TruthSource> argus_engine::RowSink for CatchReport<S> {
    fn write(
        &mut self,
        id: &str,
        _ty: TypeId,
        time: i64,
        _features: &[argus_event::Value],
    ) -> io::Result<()> {
        self.on_event(id, time)
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn decision(&mut self, d: &Decision) -> io::Result<()> {
        self.on_decision(d);
        Ok(())
    }
    fn findings(&mut self, f: &[argus_engine::Finding]) -> io::Result<()> {
        for x in f {
            let e = self.found.entry(x.detector.clone()).or_default();
            e.0 += 1;
            e.1.extend(x.accounts.iter().cloned());
        }
        Ok(())
    }
}

/// What the graph detectors' findings named, against the truth.
#[derive(Clone, Debug, Serialize)]
pub struct FindingsReport {
    pub detectors: Vec<DetectorReport>,
    /// Per scenario: attack accounts named by any finding.
    pub scenarios: Vec<(String, u64, u64)>,
    pub honest_users: u64,
    pub honest_in_findings: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DetectorReport {
    pub detector: String,
    pub findings: u64,
    pub accounts: u64,
    pub attack_accounts: u64,
    pub honest_accounts: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub start: String,
    pub days: u32,
    pub target: String,
    pub areas: Vec<AreaReport>,
    pub scenarios: Vec<ScenarioReport>,
    pub friction: Friction,
    /// Of all accounts with at least one non-allow decision, the share that are attack accounts.
    pub account_precision: Option<f64>,
    /// Per scenario: share of its accounts caught by the end of each day.
    pub timeline: Vec<Series>,
    /// Share of honest users who have met friction by the end of each day.
    pub friction_curve: Vec<f64>,
    pub unmatched_truth_records: u64,
    /// Enforced rules that fired with an action other than allow: attack events they caught, honest
    /// events and users they hit — where the friction comes from.
    pub rules: Vec<RuleFriction>,
    /// The graph detectors' findings against the truth (when the engine has `[graph]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleFriction {
    pub rule: String,
    pub attack_events: u64,
    pub honest_events: u64,
    pub honest_users: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AreaReport {
    pub area: &'static str,
    pub accounts: u64,
    pub accounts_caught: u64,
    pub account_recall: Option<f64>,
    /// Of the events flagged by rules tagged with this area, the share that are attack events.
    pub precision: Option<f64>,
    pub flagged_by_area_rules: u64,
    pub money_at_risk: f64,
    pub money_blocked: f64,
    pub money_held_for_review: f64,
    pub target_met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: &'static str,
    pub area: &'static str,
    pub campaigns: u64,
    pub campaigns_detected: u64,
    pub campaign_recall: Option<f64>,
    pub accounts: u64,
    pub accounts_caught: u64,
    pub account_recall: Option<f64>,
    pub accounts_blocked: u64,
    pub decided_events: u64,
    pub events_caught: u64,
    pub events_blocked: u64,
    pub event_recall: Option<f64>,
    pub money_at_risk: f64,
    pub money_blocked: f64,
    pub money_held_for_review: f64,
    pub median_hours_to_detection: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Friction {
    /// Honest users with at least one decision in the measured period.
    pub honest_users: u64,
    pub users_with_friction: u64,
    pub rate: Option<f64>,
    /// Users by the strongest action they met.
    pub worst_challenge: u64,
    pub worst_review: u64,
    pub worst_block: u64,
    pub honest_decisions: u64,
    pub flagged_decisions: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

impl Report {
    /// The terminal table.
    pub fn write_table(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
        let pct2 = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.2}%", v * 100.0));
        writeln!(
            w,
            "catch report: {} days from {}; target: {}",
            self.days, self.start, self.target
        )?;
        writeln!(
            w,
            "honest users: {} decided, {} met friction ({}) — worst action: {} challenge, {} review, {} block; flagged honest decisions {:?} of {}",
            self.friction.honest_users,
            self.friction.users_with_friction,
            pct2(self.friction.rate),
            self.friction.worst_challenge,
            self.friction.worst_review,
            self.friction.worst_block,
            self.friction.flagged_decisions,
            self.friction.honest_decisions
        )?;
        writeln!(
            w,
            "account precision (attack accounts among all flagged accounts): {}",
            pct(self.account_precision)
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "{:<20} {:>9} {:>9} {:>9} {:>10} {:>13} {:>13} {:>13}  target",
            "risk area",
            "accounts",
            "caught",
            "recall",
            "precision",
            "money risk",
            "blocked",
            "held"
        )?;
        for a in &self.areas {
            writeln!(
                w,
                "{:<20} {:>9} {:>9} {:>9} {:>10} {:>13.2} {:>13.2} {:>13.2}  {}",
                a.area,
                a.accounts,
                a.accounts_caught,
                pct(a.account_recall),
                pct(a.precision),
                a.money_at_risk,
                a.money_blocked,
                a.money_held_for_review,
                if a.target_met { "met" } else { "MISSED" }
            )?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "{:<17} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9} {:>12} {:>12} {:>9}",
            "scenario",
            "campaigns",
            "found",
            "accounts",
            "caught",
            "acct rec",
            "events",
            "evt rec",
            "money risk",
            "blocked",
            "ttd (h)"
        )?;
        for s in &self.scenarios {
            writeln!(
                w,
                "{:<17} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9} {:>12.2} {:>12.2} {:>9}",
                s.scenario,
                s.campaigns,
                s.campaigns_detected,
                s.accounts,
                s.accounts_caught,
                pct(s.account_recall),
                s.decided_events,
                pct(s.event_recall),
                s.money_at_risk,
                s.money_blocked,
                s.median_hours_to_detection
                    .map_or("-".into(), |h| format!("{h:.1}"))
            )?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "{:<40} {:>13} {:>13} {:>12}",
            "rule (non-allow, enforced)", "attack events", "honest events", "honest users"
        )?;
        for r in &self.rules {
            writeln!(
                w,
                "{:<40} {:>13} {:>13} {:>12}",
                r.rule, r.attack_events, r.honest_events, r.honest_users
            )?;
        }
        if let Some(f) = &self.findings {
            writeln!(w)?;
            writeln!(
                w,
                "{:<24} {:>9} {:>9} {:>15} {:>15}",
                "graph findings", "findings", "accounts", "attack accounts", "honest accounts"
            )?;
            for d in &f.detectors {
                writeln!(
                    w,
                    "{:<24} {:>9} {:>9} {:>15} {:>15}",
                    d.detector, d.findings, d.accounts, d.attack_accounts, d.honest_accounts
                )?;
            }
            let named: Vec<String> = f
                .scenarios
                .iter()
                .map(|(s, n, c)| format!("{s} {c}/{n}"))
                .collect();
            writeln!(
                w,
                "attack accounts named by a finding: {}",
                named.join(", ")
            )?;
            writeln!(
                w,
                "honest users named by a finding: {} of {} ({})",
                f.honest_in_findings,
                f.honest_users,
                pct2(ratio_opt(f.honest_in_findings, f.honest_users))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_engine::RowSink;
    use argus_policy::FiredRule;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    fn rec(
        id: &str,
        actor: &str,
        scenario: Scenario,
        role: Role,
        campaign: u32,
        money: i64,
    ) -> TruthRec {
        TruthRec {
            id: id.into(),
            actor: actor.into(),
            truth: Truth {
                scenario,
                role,
                campaign,
                money,
                money_key: 0,
                warmup: false,
            },
        }
    }

    fn decision(id: &str, action: Action, tag: &str) -> Decision {
        let fired = if action == Action::Allow {
            vec![]
        } else {
            vec![FiredRule {
                rule: format!("r_{tag}"),
                action,
                score: 0,
                reason: String::new(),
                tags: vec![tag.into()],
                shadow: false,
                reads: vec![],
            }]
        };
        Decision {
            event_id: id.into(),
            checkpoint: "order.create".into(),
            action,
            score: 0,
            fired,
            shadow: vec![],
            errors: vec![],
            policy_version: "v".into(),
            decided_by: "rule_action",
            eval_us: None,
            models: vec![],
            arm: None,
            fallback: false,
            other_action: None,
            snoozed: vec![],
            paused: vec![],
            degraded: vec![],
        }
    }

    #[test]
    fn counts_recall_friction_money_and_time_to_detection() {
        let q = Rc::new(RefCell::new(VecDeque::new()));
        let h = HOUR;
        let events = [
            (
                rec("e1", "u1", Scenario::Honest, Role::Buyer, 0, 0),
                0,
                Some(decision("e1", Action::Allow, "")),
            ),
            (
                rec("e2", "u2", Scenario::Honest, Role::Buyer, 0, 0),
                h,
                Some(decision("e2", Action::Challenge, "incentive_abuse")),
            ),
            (
                rec("e3", "u9", Scenario::CouponRing, Role::RingAccount, 7, 1000),
                2 * h,
                Some(decision("e3", Action::Allow, "")),
            ),
            (
                rec("e4", "u9", Scenario::CouponRing, Role::RingAccount, 7, 500),
                5 * h,
                Some(decision("e4", Action::Block, "incentive_abuse")),
            ),
            (
                rec("e5", "u8", Scenario::CouponRing, Role::RingAccount, 7, 1000),
                6 * h,
                Some(decision("e5", Action::Review, "incentive_abuse")),
            ),
            (
                rec("e6", "u7", Scenario::CouponRing, Role::RingAccount, 8, 1000),
                7 * h,
                Some(decision("e6", Action::Allow, "")),
            ),
            // A click (no decision) and a label (not behaviour).
            (
                rec("e7", "u7", Scenario::CouponRing, Role::RingAccount, 8, 0),
                8 * h,
                None,
            ),
            (
                rec("e8", "u9", Scenario::CouponRing, Role::Label, 7, 0),
                30 * h,
                None,
            ),
        ];
        q.borrow_mut().extend(events.iter().map(|e| e.0.clone()));
        // A record whose event the engine refused: skipped by id.
        q.borrow_mut().insert(
            3,
            rec("e-refused", "u0", Scenario::Honest, Role::Buyer, 0, 0),
        );
        let mut r = CatchReport::new(q);
        for (t, time, d) in &events {
            r.write(&t.id, 0 as TypeId, *time, &[]).unwrap();
            if let Some(d) = d {
                r.decision(d).unwrap();
            }
        }
        let rep = r.finish();
        assert_eq!(rep.unmatched_truth_records, 1);
        assert_eq!(rep.friction.honest_users, 2);
        assert_eq!(rep.friction.users_with_friction, 1);
        assert_eq!(rep.friction.rate, Some(0.5));
        let s = &rep.scenarios[0];
        assert_eq!(
            (s.accounts, s.accounts_caught, s.accounts_blocked),
            (3, 2, 1)
        );
        assert_eq!((s.campaigns, s.campaigns_detected), (2, 1));
        assert_eq!(
            (s.decided_events, s.events_caught, s.events_blocked),
            (4, 2, 1)
        );
        assert_eq!(
            (s.money_at_risk, s.money_blocked, s.money_held_for_review),
            (35.0, 5.0, 10.0)
        );
        // Campaign 7 began at 2 h and was first caught at 5 h.
        assert_eq!(s.median_hours_to_detection, Some(3.0));
        let a = &rep.areas[0];
        assert_eq!(a.area, "incentive_abuse");
        assert_eq!(
            a.precision,
            Some(2.0 / 3.0),
            "two of the three events its rules flagged were attacks"
        );
        assert!(!a.target_met);
        assert_eq!(rep.account_precision, Some(2.0 / 3.0));
        assert_eq!(rep.rules[0].rule, "r_incentive_abuse");
        assert_eq!(
            (
                rep.rules[0].attack_events,
                rep.rules[0].honest_events,
                rep.rules[0].honest_users
            ),
            (2, 1, 1)
        );
    }

    #[test]
    fn truth_reader_refuses_garbage_without_panicking() {
        let mut rng = crate::rng::Rng::new(9, &[]);
        let good = r#"{"id":"e1","actor":"u1","scenario":"coupon_ring","area":"incentive_abuse","campaign":3,"role":"ring_account","money":"10.00"}"#;
        for i in 0..20_000 {
            let mut line: Vec<u8> = good.as_bytes().to_vec();
            // Mutate a few bytes, truncate, or replace the line with noise.
            match i % 3 {
                0 => {
                    for _ in 0..rng.range(1, 4) {
                        let k = rng.index(line.len());
                        line[k] = rng.below(256) as u8;
                    }
                }
                1 => line.truncate(rng.index(line.len())),
                _ => {
                    line = (0..rng.range(0, 80))
                        .map(|_| rng.below(256) as u8)
                        .collect()
                }
            }
            line.push(b'\n');
            let mut r = TruthReader::new(&line[..]);
            let _ = r.next_truth();
        }
        let text = format!("{good}\n");
        let mut ok = TruthReader::new(text.as_bytes());
        let t = ok.next_truth().unwrap().unwrap();
        assert_eq!(
            (
                t.truth.scenario,
                t.truth.role,
                t.truth.campaign,
                t.truth.money
            ),
            (Scenario::CouponRing, Role::RingAccount, 3, 1000)
        );
        let bad = TruthReader::new(&b"{\"id\":\"e1\",\"actor\":\"u1\",\"scenario\":\"nope\",\"campaign\":0,\"role\":\"buyer\"}\n"[..]).next_truth();
        assert!(bad.unwrap_err().to_string().contains("unknown scenario"));
    }

    #[test]
    fn an_order_and_its_payment_count_their_money_once() {
        let keyed = |id: &str| TruthRec {
            id: id.into(),
            actor: "u5".into(),
            truth: Truth {
                scenario: Scenario::StolenCard,
                role: Role::Fraudster,
                campaign: 1,
                money: 30_000,
                money_key: 77,
                warmup: false,
            },
        };
        let q = Rc::new(RefCell::new(VecDeque::from([
            keyed("e1"),
            keyed("e2"),
            rec("e3", "u1", Scenario::Honest, Role::Buyer, 0, 0),
        ])));
        let mut r = CatchReport::new(q);
        for (id, action) in [
            ("e1", Action::Allow),
            ("e2", Action::Block),
            ("e3", Action::Allow),
        ] {
            r.write(id, 0 as TypeId, 0, &[]).unwrap();
            r.decision(&decision(id, action, "payment_fraud")).unwrap();
        }
        let s = &r.finish().scenarios[0];
        assert_eq!(
            (s.money_at_risk, s.money_blocked, s.money_held_for_review),
            (300.0, 300.0, 0.0),
            "blocked at payment: the order's money is stopped, once"
        );
    }

    #[test]
    fn a_missing_truth_record_is_an_error() {
        let q = Rc::new(RefCell::new(VecDeque::from([rec(
            "e1",
            "u1",
            Scenario::Honest,
            Role::Buyer,
            0,
            0,
        )])));
        let mut r = CatchReport::new(q);
        assert!(r.write("e2", 0 as TypeId, 0, &[]).is_err());
    }
}
