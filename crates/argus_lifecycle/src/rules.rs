//! What a version changes: rules compared by name across two sets of policy files, the readable
//! per-file diff, which changes need a second person's approval, and a rule's mode edited in the text.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The files of a version: name → text (policies by file name, value lists as `lists/<file>`).
pub type Files = BTreeMap<String, String>;

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleText {
    pub checkpoint: String,
    pub name: String,
    pub when: String,
    pub action: String,
    pub score: i64,
    pub mode: String,
    pub file: String,
    /// Who answers for the rule (the guard's case goes to them), when the rule names one.
    pub owner: Option<String>,
}

/// The rules and thresholds of a set of files. Files that do not parse are skipped: the loader
/// reports them; this only describes what changed.
pub fn rules_of(files: &Files) -> (BTreeMap<String, RuleText>, BTreeMap<String, String>) {
    let mut rules = BTreeMap::new();
    let mut thresholds = BTreeMap::new();
    for (file, text) in files {
        if file.starts_with("lists/") {
            continue;
        }
        let Ok(v) = text.parse::<toml::Table>() else {
            continue;
        };
        let Some(cp) = v
            .get("policy")
            .and_then(|p| p.get("checkpoint"))
            .and_then(|c| c.as_str())
        else {
            continue;
        };
        if let Some(t) = v.get("policy").and_then(|p| p.get("thresholds")) {
            thresholds.insert(cp.to_string(), t.to_string());
        }
        for r in v
            .get("rules")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            let s = |k: &str| r.get(k).and_then(|x| x.as_str()).map(str::to_string);
            let Some(name) = s("name") else { continue };
            rules.insert(
                name.clone(),
                RuleText {
                    checkpoint: cp.to_string(),
                    name,
                    when: s("when").unwrap_or_default(),
                    action: s("action").unwrap_or_default(),
                    score: r.get("score").and_then(|x| x.as_integer()).unwrap_or(0),
                    mode: s("mode").unwrap_or_else(|| "enforce".into()),
                    file: file.clone(),
                    owner: s("owner"),
                },
            );
        }
    }
    (rules, thresholds)
}

/// A rule's change between two versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleChange {
    pub rule: String,
    pub checkpoint: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// What changed: `when`, `action`, `score`, `mode`, `checkpoint`.
    pub fields: Vec<&'static str>,
    pub before: Option<RuleText>,
    pub after: Option<RuleText>,
}

/// A file's change: `added`, `removed` or `changed`, with its unified diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileChange {
    pub file: String,
    pub change: &'static str,
    pub diff: String,
}

/// Everything that differs between `before` and `after`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub files: Vec<FileChange>,
    pub rules: Vec<RuleChange>,
    /// Checkpoints whose score thresholds changed.
    pub thresholds: Vec<String>,
}

pub fn diff(before: &Files, after: &Files) -> Diff {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut files = Vec::new();
    for n in names {
        let (a, b) = (before.get(n), after.get(n));
        if a == b {
            continue;
        }
        let change = match (a, b) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let (a, b) = (a.map_or("", String::as_str), b.map_or("", String::as_str));
        let d = similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{n}"), &format!("b/{n}"))
            .to_string();
        files.push(FileChange {
            file: n.clone(),
            change,
            diff: d,
        });
    }
    let (ra, ta) = rules_of(before);
    let (rb, tb) = rules_of(after);
    let mut rules = Vec::new();
    let names: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    for n in names {
        let (a, b) = (ra.get(n), rb.get(n));
        let (change, fields) = match (a, b) {
            (None, Some(_)) => ("added", vec![]),
            (Some(_), None) => ("removed", vec![]),
            (Some(a), Some(b)) => {
                let mut f = Vec::new();
                if a.when != b.when {
                    f.push("when");
                }
                if a.action != b.action {
                    f.push("action");
                }
                if a.score != b.score {
                    f.push("score");
                }
                if a.mode != b.mode {
                    f.push("mode");
                }
                if a.checkpoint != b.checkpoint {
                    f.push("checkpoint");
                }
                if f.is_empty() {
                    continue;
                }
                ("changed", f)
            }
            (None, None) => continue,
        };
        let checkpoint = b.or(a).map(|r| r.checkpoint.clone()).unwrap_or_default();
        rules.push(RuleChange {
            rule: n.clone(),
            checkpoint,
            change,
            fields,
            before: a.cloned(),
            after: b.cloned(),
        });
    }
    let cps: BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
    let thresholds = cps
        .into_iter()
        .filter(|c| ta.get(*c) != tb.get(*c))
        .cloned()
        .collect();
    Diff {
        files,
        rules,
        thresholds,
    }
}

/// Which changes need an approver other than the author: per checkpoint, the actions whose enforced
/// rules need one (`default` for checkpoints not named).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    #[serde(default = "friction")]
    pub actions: Vec<String>,
    #[serde(default)]
    pub checkpoints: BTreeMap<String, Vec<String>>,
}

fn friction() -> Vec<String> {
    vec!["block".into(), "challenge".into()]
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            actions: friction(),
            checkpoints: BTreeMap::new(),
        }
    }
}

impl ApprovalPolicy {
    fn actions_of(&self, checkpoint: &str) -> &[String] {
        self.checkpoints
            .get(checkpoint)
            .map_or(&self.actions[..], |v| &v[..])
    }

    /// Why the change from `before` to `after` needs a second person (empty: it does not). A rule
    /// needs one when, after the change, it enforces an action that needs approval at its checkpoint
    /// and its condition, action, score, mode or checkpoint changed (or it is new). So do removing
    /// an enforced `allow` rule (more friction for those it let through) and changing the score
    /// thresholds of a checkpoint where blocking or challenging needs approval.
    pub fn reasons(&self, d: &Diff) -> Vec<String> {
        let mut out = Vec::new();
        for c in &d.rules {
            match (&c.before, &c.after) {
                (_, Some(a))
                    if a.mode == "enforce"
                        && self.actions_of(&a.checkpoint).contains(&a.action) =>
                {
                    out.push(format!(
                        "rule `{}` ({}) would {} in enforce mode",
                        a.name, c.change, a.action
                    ));
                }
                (Some(b), None)
                    if b.mode == "enforce"
                        && b.action == "allow"
                        && !self.actions_of(&b.checkpoint).is_empty() =>
                {
                    out.push(format!(
                        "enforced allow rule `{}` is removed: what it let through meets the other rules",
                        b.name
                    ));
                }
                _ => {}
            }
        }
        for cp in &d.thresholds {
            if self
                .actions_of(cp)
                .iter()
                .any(|a| a == "block" || a == "challenge" || a == "review")
            {
                out.push(format!("the score thresholds of `{cp}` change"));
            }
        }
        out
    }
}

/// `text` with rule `rule`'s mode set to `mode` (the line replaced, or added after its name), or
/// `None` when the file has no such rule.
pub fn set_rule_mode(text: &str, rule: &str, mode: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is_name = |l: &str| {
        let t = l.trim();
        t.strip_prefix("name")
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('='))
            .map(str::trim)
            .is_some_and(|v| v.trim_matches(|c| c == '"' || c == '\'') == rule && v.len() >= 2)
    };
    let name_at = lines.iter().position(|l| is_name(l))?;
    // The rule's table: from its `[[rules]]` header to the next header.
    let start = lines[..name_at]
        .iter()
        .rposition(|l| l.trim_start().starts_with("[["))
        .map_or(0, |i| i + 1);
    let end = lines[name_at..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| name_at + i);
    let mut out = String::with_capacity(text.len() + 20);
    let mut done = false;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if (start..end).contains(&i)
            && t.strip_prefix("mode")
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            out.push_str(&format!("mode = \"{mode}\"\n"));
            done = true;
            continue;
        }
        out.push_str(l);
        if i == name_at && !done {
            let mut rest = lines[name_at + 1..end].iter();
            if !rest.any(|l| {
                l.trim_start()
                    .strip_prefix("mode")
                    .is_some_and(|r| r.trim_start().starts_with('='))
            }) {
                if !l.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&format!("mode = \"{mode}\"\n"));
                done = true;
            }
        }
    }
    Some(out)
}
