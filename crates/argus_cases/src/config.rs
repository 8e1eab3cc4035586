//! `[cases]` in `argus.toml`: where cases are stored, the inboxes, the routing rules that send a
//! decision or a graph finding to an inbox, what a ring ban does, and the webhooks.
//!
//! Routing is pure: [`Routing::route`] takes what a decision or finding says ([`Intake`]) and gives the
//! inbox and priority, first matching route wins, in file order. Nothing here touches the database.

use serde::Deserialize;

/// `[cases]`, as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CasesConfig {
    /// `false` turns cases off (no intake, no routes besides the API's 404s).
    pub enabled: Option<bool>,
    /// `sqlite://…` or `postgres://…`; default: `cases.db` in the server's data directory.
    pub database: Option<String>,
    /// How long a claim holds a case (default `15m`).
    pub lock: Option<String>,
    /// Cases one analyst may hold claimed at once (default 5).
    pub claim_cap: Option<i64>,
    /// The most members one bulk job may act on (default 1000).
    pub bulk_cap: Option<i64>,
    /// Decisions and findings case intake holds in memory while the case store is behind or
    /// unreachable (default 65536); past that, it reads them again from the event log once it
    /// catches up.
    pub intake_queue: Option<i64>,
    /// How long a resolved case (its timeline, notes, members and done actions) is kept after its
    /// last change; absent: kept until erased or deleted by hand.
    pub retention: Option<String>,
    /// What a ban does to each account of a ring.
    #[serde(default)]
    pub ban: BanConfig,
    #[serde(default)]
    pub inboxes: Vec<InboxConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BanConfig {
    /// The deny list banned accounts go into (default `banned_users`).
    pub accounts_list: Option<String>,
    /// The deny list a ring's shared devices go into (default `blocked_devices`; `""`: none).
    pub devices_list: Option<String>,
    /// How long list entries of a ban last (default `365d`).
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    pub name: String,
    /// Time to a decision on a case of this inbox (default `24h`).
    pub sla: Option<String>,
    /// An open case past its SLA moves to this inbox.
    pub escalate_to: Option<String>,
    /// Users new cases of this inbox are assigned to, in turn, up to their `claim_cap`.
    #[serde(default)]
    pub auto_assign: Vec<String>,
}

/// One routing rule: every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub inbox: String,
    /// `decision` (default) or `finding`.
    pub source: Option<String>,
    /// The decision's action is one of these (default `["review"]`).
    pub actions: Option<Vec<String>>,
    /// One of these rules fired.
    #[serde(default)]
    pub rules: Vec<String>,
    /// A fired rule carries one of these tags (the risk area, e.g. `incentive_abuse`).
    #[serde(default)]
    pub tags: Vec<String>,
    pub min_score: Option<i64>,
    /// The event's `amount` is at least this (a decimal string).
    pub min_amount: Option<String>,
    /// The decision's checkpoint is one of these.
    #[serde(default)]
    pub checkpoints: Vec<String>,
    /// Findings only: the detector is one of these (`cluster`, `block:<name>`).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// Higher first in the queue (default 0).
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `http://host:port/path` (plain HTTP on a private network; put TLS in a proxy).
    pub url: String,
    /// Attempts before an action is `failed` (default 8); a failed one can be retried by hand.
    pub max_attempts: Option<i64>,
}

/// What a decision or finding says that routing reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intake {
    /// `decision` or `finding`.
    pub source: String,
    pub action: String,
    pub rules: Vec<String>,
    pub tags: Vec<String>,
    pub score: i64,
    /// Micro-units.
    pub amount: Option<i64>,
    pub checkpoint: String,
    pub detector: String,
}

impl Intake {
    /// What routing reads of a decision. `amount` in micro-units; `None` (not known) passes every
    /// `min_amount`, so that a check before the event's amount is read is a superset.
    pub fn of_decision(d: &argus_policy::Decision, amount: Option<i64>) -> Intake {
        let mut tags: Vec<String> = d
            .fired
            .iter()
            .flat_map(|f| f.tags.iter().cloned())
            .collect();
        tags.sort();
        tags.dedup();
        Intake {
            source: "decision".into(),
            action: d.action.name().to_string(),
            rules: d.fired.iter().map(|f| f.rule.clone()).collect(),
            tags,
            score: d.score,
            amount: Some(amount.unwrap_or(i64::MAX)),
            checkpoint: d.checkpoint.clone(),
            detector: String::new(),
        }
    }
}

/// `[cases]`, checked and compiled.
#[derive(Debug, Clone)]
pub struct Routing {
    pub enabled: bool,
    pub database: Option<String>,
    pub lock_ms: i64,
    /// `retention`: resolved cases older than this are deleted (None: kept).
    pub retention_ms: Option<i64>,
    pub claim_cap: i64,
    pub bulk_cap: i64,
    /// `intake_queue`.
    pub intake_queue: usize,
    pub ban_accounts_list: String,
    pub ban_devices_list: Option<String>,
    pub ban_ttl: String,
    pub inboxes: Vec<Inbox>,
    routes: Vec<Route>,
    pub webhooks: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inbox {
    pub name: String,
    pub sla_ms: i64,
    pub escalate_to: Option<String>,
    pub auto_assign: Vec<String>,
}

#[derive(Debug, Clone)]
struct Route {
    inbox: String,
    source: String,
    actions: Vec<String>,
    rules: Vec<String>,
    tags: Vec<String>,
    min_score: Option<i64>,
    min_amount: Option<i64>,
    checkpoints: Vec<String>,
    detectors: Vec<String>,
    priority: i64,
}

fn duration(what: &str, v: &Option<String>, default: i64, errors: &mut Vec<String>) -> i64 {
    match v {
        None => default,
        Some(s) => match argus_event::time::parse_duration(s) {
            Some(ms) if ms > 0 => ms,
            _ => {
                errors.push(format!(
                    "cases: {what} = `{s}` is not a positive duration (e.g. `15m`, `4h`, `1d`)"
                ));
                default
            }
        },
    }
}

/// A decimal string (`12.50`) in micro-units.
pub fn parse_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty()
        || frac.len() > 6
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: i64 = format!("{frac:0<6}").parse().ok()?;
    let v = i.checked_mul(1_000_000)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

impl Default for Routing {
    /// `[cases]` left out: inbox `review` (SLA 24 h) for decisions whose action is `review`, and
    /// inbox `rings` (SLA 4 h, priority 10) for graph findings; 15-minute claims, 5 per analyst.
    fn default() -> Routing {
        let inbox = |name: &str, sla_ms| Inbox {
            name: name.into(),
            sla_ms,
            escalate_to: None,
            auto_assign: vec![],
        };
        let route = |inbox: &str, source: &str, priority| Route {
            inbox: inbox.into(),
            source: source.into(),
            actions: vec!["review".into()],
            rules: vec![],
            tags: vec![],
            min_score: None,
            min_amount: None,
            checkpoints: vec![],
            detectors: vec![],
            priority,
        };
        Routing {
            enabled: true,
            database: None,
            lock_ms: 15 * 60_000,
            retention_ms: None,
            claim_cap: 5,
            bulk_cap: 1000,
            intake_queue: 65_536,
            ban_accounts_list: "banned_users".into(),
            ban_devices_list: Some("blocked_devices".into()),
            ban_ttl: "365d".into(),
            inboxes: vec![inbox("review", 86_400_000), inbox("rings", 4 * 3_600_000)],
            routes: vec![
                route("rings", "finding", 10),
                route("review", "decision", 0),
            ],
            webhooks: vec![],
        }
    }
}

impl Routing {
    /// Checks `[cases]`, reporting every problem at once. Without inboxes and routes, the defaults:
    /// inbox `review` (SLA 24 h) for decisions whose action is `review`, and inbox `rings` (SLA 4 h,
    /// priority 10) for graph findings.
    pub fn compile(c: &CasesConfig) -> Result<Routing, Vec<String>> {
        let mut errors = Vec::new();
        let mut inboxes: Vec<Inbox> = Vec::new();
        for i in &c.inboxes {
            if i.name.trim().is_empty() {
                errors.push("cases.inboxes: an inbox needs a name".into());
            }
            if inboxes.iter().any(|x| x.name == i.name) {
                errors.push(format!("cases.inboxes: `{}` is listed twice", i.name));
            }
            inboxes.push(Inbox {
                name: i.name.clone(),
                sla_ms: duration(
                    &format!("inboxes.{}.sla", i.name),
                    &i.sla,
                    86_400_000,
                    &mut errors,
                ),
                escalate_to: i.escalate_to.clone(),
                auto_assign: i.auto_assign.clone(),
            });
        }
        let defaults = Routing::default();
        let preset = c.inboxes.is_empty() && c.routes.is_empty();
        if preset {
            inboxes = defaults.inboxes.clone();
        }
        let raw_routes = &c.routes;
        for i in &inboxes {
            if let Some(t) = &i.escalate_to {
                if !inboxes.iter().any(|x| &x.name == t) || t == &i.name {
                    errors.push(format!(
                        "cases.inboxes.{}: escalate_to = `{t}` is not another inbox",
                        i.name
                    ));
                }
            }
        }
        let mut routes = Vec::new();
        for (n, r) in raw_routes.iter().enumerate() {
            let at = format!("cases.routes[{n}]");
            if !inboxes.iter().any(|i| i.name == r.inbox) {
                errors.push(format!(
                    "{at}: inbox `{}` is not in [[cases.inboxes]]",
                    r.inbox
                ));
            }
            let source = r.source.clone().unwrap_or_else(|| "decision".into());
            if source != "decision" && source != "finding" {
                errors.push(format!(
                    "{at}: source = `{source}`: expected `decision` or `finding`"
                ));
            }
            let actions = r.actions.clone().unwrap_or_else(|| vec!["review".into()]);
            for a in &actions {
                if !["allow", "challenge", "review", "block"].contains(&a.as_str()) {
                    errors.push(format!("{at}: unknown action `{a}`"));
                }
            }
            let min_amount = match &r.min_amount {
                None => None,
                Some(s) => match parse_micros(s) {
                    Some(v) => Some(v),
                    None => {
                        errors.push(format!("{at}: min_amount = `{s}` is not a decimal"));
                        None
                    }
                },
            };
            routes.push(Route {
                inbox: r.inbox.clone(),
                source,
                actions,
                rules: r.rules.clone(),
                tags: r.tags.clone(),
                min_score: r.min_score,
                min_amount,
                checkpoints: r.checkpoints.clone(),
                detectors: r.detectors.clone(),
                priority: r.priority.unwrap_or(0),
            });
        }
        let mut hooks: Vec<&str> = Vec::new();
        for w in &c.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                errors.push(format!(
                    "cases.webhooks.{}: url `{}` must start with http:// or https://",
                    w.name, w.url
                ));
            }
            if hooks.contains(&w.name.as_str()) {
                errors.push(format!("cases.webhooks: `{}` is listed twice", w.name));
            }
            hooks.push(&w.name);
        }
        if preset {
            routes = defaults.routes.clone();
        }
        let lock_ms = duration("lock", &c.lock, defaults.lock_ms, &mut errors);
        let retention_ms = c
            .retention
            .as_ref()
            .map(|_| duration("retention", &c.retention, 0, &mut errors));
        let ban_ttl = c.ban.ttl.clone().unwrap_or(defaults.ban_ttl);
        duration("ban.ttl", &Some(ban_ttl.clone()), 0, &mut errors);
        let claim_cap = c.claim_cap.unwrap_or(defaults.claim_cap);
        let bulk_cap = c.bulk_cap.unwrap_or(defaults.bulk_cap);
        if claim_cap < 1 || bulk_cap < 1 {
            errors.push("cases: claim_cap and bulk_cap must be at least 1".into());
        }
        let intake_queue = c.intake_queue.unwrap_or(defaults.intake_queue as i64);
        if !(1..=16_777_216).contains(&intake_queue) {
            errors.push("cases: intake_queue must be from 1 to 16777216".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Routing {
            enabled: c.enabled.unwrap_or(true),
            database: c.database.clone(),
            lock_ms,
            retention_ms,
            claim_cap,
            bulk_cap,
            intake_queue: intake_queue.max(1) as usize,
            ban_accounts_list: c
                .ban
                .accounts_list
                .clone()
                .unwrap_or(defaults.ban_accounts_list),
            ban_devices_list: match c.ban.devices_list.as_deref() {
                None => defaults.ban_devices_list,
                Some("") => None,
                Some(s) => Some(s.into()),
            },
            ban_ttl,
            inboxes,
            routes,
            webhooks: c.webhooks.clone(),
        })
    }

    /// The inbox and priority for what came in: the first route that matches, or `None`.
    pub fn route(&self, x: &Intake) -> Option<(&Inbox, i64)> {
        let r = if x.source == "finding" {
            self.routes.iter().find(|r| {
                r.source == x.source
                    && (r.detectors.is_empty() || r.detectors.contains(&x.detector))
            })
        } else {
            self.first_route(
                &x.source,
                &x.action,
                |rules| x.rules.iter().any(|f| rules.contains(f)),
                |tags| x.tags.iter().any(|t| tags.contains(t)),
                x.score,
                x.amount,
                &x.checkpoint,
            )
        }?;
        let inbox = self.inboxes.iter().find(|i| i.name == r.inbox)?;
        Some((inbox, r.priority))
    }

    /// The first route of `source` (not a finding's) that takes a trigger of this action, score,
    /// amount and checkpoint whose rules (`any_rule(route's rules)`) and tags (`any_tag`) meet
    /// the route's: `route`'s one predicate, for an intake record and for a typed decision.
    #[allow(clippy::too_many_arguments)]
    fn first_route(
        &self,
        source: &str,
        action: &str,
        any_rule: impl Fn(&[String]) -> bool,
        any_tag: impl Fn(&[String]) -> bool,
        score: i64,
        amount: Option<i64>,
        checkpoint: &str,
    ) -> Option<&Route> {
        self.routes.iter().find(|r| {
            r.source == source
                && r.actions.iter().any(|a| a == action)
                && (r.rules.is_empty() || any_rule(&r.rules))
                && (r.tags.is_empty() || any_tag(&r.tags))
                && r.min_score.is_none_or(|m| score >= m)
                && r.min_amount.is_none_or(|m| amount.is_some_and(|a| a >= m))
                && (r.checkpoints.is_empty() || r.checkpoints.iter().any(|c| c == checkpoint))
        })
    }

    /// Whether a route takes this decision before its amount is known:
    /// `route(&Intake::of_decision(d, None)).is_some()`, without building the intake (no copy of
    /// its rules, tags and checkpoint). The server asks it of every live decision whose action a
    /// route takes, most of which no route does.
    pub fn takes_decision(&self, d: &argus_policy::Decision) -> bool {
        self.first_route(
            "decision",
            d.action.name(),
            |rules| d.fired.iter().any(|f| rules.contains(&f.rule)),
            |tags| {
                d.fired
                    .iter()
                    .any(|f| f.tags.iter().any(|t| tags.contains(t)))
            },
            d.score,
            // Not known yet: passes every `min_amount`, as `of_decision(d, None)` does.
            Some(i64::MAX),
            &d.checkpoint,
        )
        .is_some_and(|r| self.inboxes.iter().any(|i| i.name == r.inbox))
    }

    /// The decision actions any route takes: the server hands only these decisions to intake.
    pub fn wanted_actions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.source == "decision")
            .flat_map(|r| r.actions.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether findings open cases.
    pub fn wants_findings(&self) -> bool {
        self.routes.iter().any(|r| r.source == "finding")
    }

    pub fn inbox(&self, name: &str) -> Option<&Inbox> {
        self.inboxes.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(s: &str) -> Result<Routing, Vec<String>> {
        let c: CasesConfig = toml::from_str(s).unwrap();
        Routing::compile(&c)
    }

    fn decision(action: &str, rules: &[&str], score: i64, amount: Option<&str>) -> Intake {
        Intake {
            source: "decision".into(),
            action: action.into(),
            rules: rules.iter().map(|s| s.to_string()).collect(),
            tags: vec!["incentive_abuse".into()],
            score,
            amount: amount.and_then(parse_micros),
            checkpoint: "order.create".into(),
            detector: String::new(),
        }
    }

    /// An enforced `review` rule that fired, with one tag.
    fn fired_rule(rule: &str, tag: &str) -> argus_policy::FiredRule {
        argus_policy::FiredRule {
            rule: rule.into(),
            action: argus_policy::Action::Review,
            score: 10,
            reason: String::new(),
            tags: vec![tag.into()],
            shadow: false,
            reads: vec![],
        }
    }

    /// A `review` decision at `order.create` with this score and these rules.
    fn review_decision(score: i64, fired: Vec<argus_policy::FiredRule>) -> argus_policy::Decision {
        argus_policy::Decision {
            event_id: "e1".into(),
            checkpoint: "order.create".into(),
            action: argus_policy::Action::Review,
            score,
            fired,
            shadow: vec![],
            errors: vec![],
            policy_version: String::new(),
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
    fn routes_in_order_on_every_condition() {
        let r = compile(
            r#"
            [[inboxes]]
            name = "big"
            sla = "1h"
            [[inboxes]]
            name = "coupons"
            [[inboxes]]
            name = "rest"
            escalate_to = "big"
            [[routes]]
            inbox = "big"
            actions = ["review", "block"]
            min_amount = "500"
            priority = 5
            [[routes]]
            inbox = "coupons"
            tags = ["incentive_abuse"]
            min_score = 40
            [[routes]]
            inbox = "rest"
            "#,
        )
        .unwrap();
        let at = |x: &Intake| r.route(x).map(|(i, p)| (i.name.clone(), p));
        assert_eq!(
            at(&decision("block", &["a"], 0, Some("500.00"))),
            Some(("big".into(), 5))
        );
        assert_eq!(
            at(&decision("review", &["a"], 40, Some("499.99"))),
            Some(("coupons".into(), 0))
        );
        assert_eq!(
            at(&decision("review", &["a"], 39, None)),
            Some(("rest".into(), 0))
        );
        // `block` is only in the first route, and the amount is too small.
        assert_eq!(at(&decision("block", &["a"], 90, Some("10"))), None);
        assert_eq!(at(&decision("allow", &[], 0, None)), None);
        assert_eq!(r.wanted_actions(), vec!["block", "review"]);
        assert!(!r.wants_findings());
        assert_eq!(r.inbox("big").unwrap().sla_ms, 3_600_000);
        assert_eq!(r.inbox("coupons").unwrap().sla_ms, 86_400_000);
    }

    #[test]
    fn defaults_send_reviews_and_findings() {
        let r = compile("").unwrap();
        let f = Intake {
            source: "finding".into(),
            detector: "cluster".into(),
            ..Intake::default()
        };
        assert_eq!(r.route(&f).unwrap().0.name, "rings");
        assert_eq!(
            r.route(&decision("review", &[], 0, None)).unwrap().0.name,
            "review"
        );
        assert_eq!(r.lock_ms, 15 * 60_000);
        assert_eq!(r.ban_accounts_list, "banned_users");
        assert_eq!(r.ban_devices_list.as_deref(), Some("blocked_devices"));
    }

    #[test]
    fn every_problem_at_once() {
        let e = compile(
            r#"
            lock = "soon"
            [[inboxes]]
            name = "a"
            escalate_to = "nowhere"
            [[routes]]
            inbox = "b"
            actions = ["ban"]
            source = "mail"
            min_amount = "1.2.3"
            [[webhooks]]
            name = "w"
            url = "ftp://x"
            "#,
        )
        .unwrap_err();
        let all = e.join("\n");
        for s in [
            "lock",
            "escalate_to",
            "inbox `b`",
            "unknown action `ban`",
            "source = `mail`",
            "min_amount",
            "ftp://x",
        ] {
            assert!(all.contains(s), "{s} missing from {all}");
        }
    }

    #[test]
    fn a_typed_decision_routes_with_an_unknown_amount_passing() {
        let r = compile(
            "[[inboxes]]\nname = \"big\"\n[[routes]]\ninbox = \"big\"\nmin_amount = \"500\"\nrules = [\"r1\"]",
        )
        .unwrap();
        let fired = |rule: &str| fired_rule(rule, "t");
        let d = review_decision(10, vec![fired("r1")]);
        // Before the amount is known, the route may take it (a superset); with it, it decides.
        assert!(r.route(&Intake::of_decision(&d, None)).is_some());
        assert!(r
            .route(&Intake::of_decision(&d, Some(100_000_000)))
            .is_none());
        assert!(r
            .route(&Intake::of_decision(&d, Some(500_000_000)))
            .is_some());
        let other = argus_policy::Decision {
            fired: vec![fired("r2")],
            ..d.clone()
        };
        assert!(
            r.route(&Intake::of_decision(&other, None)).is_none(),
            "no route takes r2"
        );
        assert!(r.takes_decision(&d));
        assert!(!r.takes_decision(&other));
    }

    /// `takes_decision` answers as `route(&Intake::of_decision(d, None))` does, on every
    /// condition a route has, for decisions that pass and fail each.
    #[test]
    fn takes_decision_is_route_without_the_copy() {
        let r = compile(
            r#"
            [[inboxes]]
            name = "big"
            [[inboxes]]
            name = "coupons"
            [[routes]]
            inbox = "big"
            actions = ["block"]
            min_amount = "500"
            checkpoints = ["order.create"]
            [[routes]]
            inbox = "coupons"
            actions = ["review", "challenge"]
            tags = ["incentive_abuse"]
            rules = ["r1", "r3"]
            min_score = 40
            [[routes]]
            inbox = "big"
            source = "finding"
            "#,
        )
        .unwrap();
        let fired = fired_rule;
        let base = review_decision(50, vec![fired("r1", "incentive_abuse")]);
        use argus_policy::Action::*;
        let mut cases = Vec::new();
        for action in [Allow, Challenge, Review, Block] {
            for checkpoint in ["order.create", "account.login"] {
                for score in [39, 40] {
                    for fired_ in [
                        vec![],
                        vec![fired("r1", "incentive_abuse")],
                        vec![fired("r2", "incentive_abuse")],
                        vec![fired("r3", "other"), fired("r2", "incentive_abuse")],
                    ] {
                        cases.push(argus_policy::Decision {
                            action,
                            checkpoint: checkpoint.into(),
                            score,
                            fired: fired_,
                            ..base.clone()
                        });
                    }
                }
            }
        }
        let mut taken = 0;
        for d in &cases {
            let want = r.route(&Intake::of_decision(d, None)).is_some();
            assert_eq!(r.takes_decision(d), want, "{d:?}");
            taken += usize::from(want);
        }
        // The premise: both answers occur.
        assert!(
            taken > 0 && taken < cases.len(),
            "{taken} of {}",
            cases.len()
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_micros("12.5"), Some(12_500_000));
        assert_eq!(parse_micros("-0.000001"), Some(-1));
        assert_eq!(parse_micros("7"), Some(7_000_000));
        assert_eq!(parse_micros("1.1234567"), None);
        assert_eq!(parse_micros("x"), None);
        assert_eq!(parse_micros("."), None);
    }
}
