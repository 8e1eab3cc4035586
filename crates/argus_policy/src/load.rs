//! Loading a policy directory: `*.toml` policy files (rules and their tests) and `lists/*.toml` value
//! lists. Everything is checked against the schema and the features first; every problem is reported.

use crate::decision::Action;
use crate::lists::{ListItem, ListKind, ValueList, ValueLists};
use crate::policy::{checkpoint_env, Policy, PolicySet, Rule, Thresholds};
use argus_event::{Pseudonymizer, Schema};
use argus_features::FeatureSet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    policy: PolicyHeader,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    tests: Vec<TestConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyHeader {
    checkpoint: String,
    version: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    thresholds: ThresholdsConfig,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ThresholdsConfig {
    challenge: Option<i64>,
    review: Option<i64>,
    block: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    name: String,
    when: toml::Spanned<String>,
    action: String,
    #[serde(default)]
    score: i64,
    reason: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "enforce")]
    mode: String,
    /// Who answers for the rule: the blast-radius guard's case about it is assigned to them.
    #[allow(dead_code)]
    owner: Option<String>,
}

fn enforce() -> String {
    "enforce".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    name: String,
    #[serde(default)]
    prior: Vec<toml::Value>,
    event: toml::Value,
    expect_action: Option<String>,
    #[serde(default)]
    expect_rules: Vec<String>,
    #[serde(default)]
    expect_not_rules: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    list: ListHeader,
    #[serde(default)]
    items: Vec<ItemConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListHeader {
    name: String,
    kind: String,
    entity: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemConfig {
    value: String,
    reason: String,
    expires: Option<String>,
}

/// A test case carried by a policy file: prior events, the event under test, and what to expect.
#[derive(Debug, Clone)]
pub struct PolicyTest {
    pub file: String,
    pub name: String,
    /// Events as JSON envelopes; `id` and `time` default to `<test>-<n>` and one second apart.
    pub prior: Vec<serde_json::Value>,
    pub event: serde_json::Value,
    pub expect_action: Option<Action>,
    pub expect_rules: Vec<String>,
    pub expect_not_rules: Vec<String>,
}

/// A loaded policy directory.
#[derive(Debug)]
pub struct Loaded {
    pub policies: PolicySet,
    pub tests: Vec<PolicyTest>,
    pub files: Vec<PathBuf>,
    /// Every file's text by name: policies by file name, lists as `lists/<file name>` (what a stored
    /// policy version holds).
    pub sources: std::collections::BTreeMap<String, String>,
}

/// One problem found while loading, with where it is: what the console's editor marks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// The file (as named to the loader); empty when the problem is not in one file.
    pub file: String,
    /// The rule, when the problem is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// A stable code (`unknown_name`, `type_mismatch`, … from the rule language; `unreachable`;
    /// `invalid` for the rest).
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Byte offsets in the file, and the 1-based line and column of `start`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// The span's length in characters (`end - start` counts bytes), for an editor to mark it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// The whole report, as `argus check` prints it.
    pub rendered: String,
}

/// The problems of a load, in the order found.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// A problem known only by its message (`<file>: …`).
    fn push(&mut self, rendered: String) {
        let code = rendered
            .split_once("error[")
            .and_then(|(_, r)| r.split_once(']'))
            .map_or("invalid", |(c, _)| c)
            .to_string();
        let (file, message) = match rendered.split_once(": ") {
            Some((f, m)) if f.ends_with(".toml") => (f.to_string(), m.to_string()),
            _ => (String::new(), rendered.clone()),
        };
        self.0.push(Problem {
            file,
            rule: None,
            code,
            message,
            hint: None,
            start: None,
            end: None,
            line: None,
            column: None,
            length: None,
            rendered,
        });
    }

    /// A file that is not valid TOML (or not the expected tables), located by the parser's span.
    fn toml(&mut self, file: &str, text: &str, e: &toml::de::Error) {
        let span = e.span();
        let (line, column) = span.as_ref().map_or((None, None), |s| {
            let (l, c) = line_col(text, s.start);
            (Some(l), Some(c))
        });
        self.0.push(Problem {
            file: file.to_string(),
            rule: None,
            code: "invalid_toml".into(),
            message: e.message().to_string(),
            hint: None,
            start: span.as_ref().map(|s| s.start),
            end: span.as_ref().map(|s| s.end),
            line,
            column,
            length: span
                .as_ref()
                .and_then(|s| text.get(s.clone()))
                .map(|t| t.chars().count()),
            rendered: format!("{file}: {e}"),
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The byte offset and 1-based line and column of `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where the unescaped string value `value`, found at `span` of `text` (quotes included), starts in
/// the file: exact when the value is written without escapes, else `None`.
fn value_start(text: &str, span: &std::ops::Range<usize>, value: &str) -> Option<usize> {
    let raw = text.get(span.clone())?;
    for q in [3usize, 1] {
        if raw.len() >= 2 * q && raw.get(q..q + value.len()) == Some(value) {
            return Some(span.start + q);
        }
    }
    None
}

/// Every problem found, rendered (file, rule, span, hint).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct LoadError(pub Vec<String>);

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Named sources: `(file name, text)`.
pub type Sources = Vec<(String, String)>;

/// Reads `dir/*.toml` (policies) and `dir/lists/*.toml` (value lists).
pub fn read_dir(dir: &Path) -> Result<(Sources, Sources), LoadError> {
    if !dir.is_dir() {
        return Err(LoadError(vec![format!(
            "{}: not a directory",
            dir.display()
        )]));
    }
    let read = |files: Vec<PathBuf>| -> Result<Sources, LoadError> {
        files
            .into_iter()
            .map(|f| {
                std::fs::read_to_string(&f)
                    .map(|t| (f.display().to_string(), t))
                    .map_err(|e| LoadError(vec![format!("{}: cannot read: {e}", f.display())]))
            })
            .collect()
    };
    Ok((
        read(toml_files(dir))?,
        read(toml_files(&dir.join("lists")))?,
    ))
}

/// Loads a policy directory from disk.
pub fn load_dir(
    dir: &Path,
    schema: &Schema,
    features: &FeatureSet,
    pseudo: &Pseudonymizer,
) -> Result<Loaded, LoadError> {
    let (policies, lists) = read_dir(dir)?;
    load_sources(&policies, &lists, schema, features, pseudo)
}

/// Loads policies and lists given as named texts (files, or files embedded in the binary).
pub fn load_sources(
    policy_files: &Sources,
    list_files: &Sources,
    schema: &Schema,
    features: &FeatureSet,
    pseudo: &Pseudonymizer,
) -> Result<Loaded, LoadError> {
    load_checked(policy_files, list_files, schema, features, pseudo)
        .map_err(|ps| LoadError(ps.into_iter().map(|p| p.rendered).collect()))
}

/// As [`load_sources`], with every problem located (file, rule, byte span, line and column): what
/// the console's editor shows as the analyst types.
pub fn load_checked(
    policy_files: &Sources,
    list_files: &Sources,
    schema: &Schema,
    features: &FeatureSet,
    pseudo: &Pseudonymizer,
) -> Result<Loaded, Vec<Problem>> {
    // File order (and so rule order and the version) is by file name, wherever the files come from.
    let by_name = |v: &Sources| {
        let mut v = v.clone();
        v.sort_by(|a, b| file_name(&a.0).cmp(file_name(&b.0)));
        v
    };
    let (policy_files, list_files) = (&by_name(policy_files), &by_name(list_files));
    let mut errors = Problems::default();
    let mut files = Vec::new();
    let mut sources = std::collections::BTreeMap::new();
    for (name, text) in policy_files {
        sources.insert(file_name(name).to_string(), text.clone());
    }
    for (name, text) in list_files {
        sources.insert(format!("lists/{}", file_name(name)), text.clone());
    }
    let texts: HashMap<&str, &str> = policy_files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let mut fingerprint = String::new();
    // Lists first: rules refer to them.
    let mut lists = ValueLists::default();
    for (name, text) in list_files {
        let name = name.clone();
        fingerprint.push_str(text);
        files.push(PathBuf::from(&name));
        let lf: ListFile = match toml::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                errors.toml(&name, text, &e);
                continue;
            }
        };
        let kind = match lf.list.kind.as_str() {
            "deny" => ListKind::Deny,
            "allow" => ListKind::Allow,
            "watch" => ListKind::Watch,
            k => {
                errors.push(format!(
                    "{name}: list.kind: `{k}` is not deny, allow or watch"
                ));
                continue;
            }
        };
        if lists.index_of(&lf.list.name).is_some() {
            errors.push(format!("{name}: list `{}` is defined twice", lf.list.name));
            continue;
        }
        if let Some(k) = &lf.list.entity {
            if !schema.entity_kinds.contains(k) {
                errors.push(format!("{name}: list.entity: unknown entity kind `{k}`"));
            }
        }
        let mut items = HashMap::new();
        for (i, it) in lf.items.iter().enumerate() {
            let value = match crate::lists::item_key(lf.list.entity.as_deref(), &it.value, pseudo) {
                Ok(v) => v,
                Err(m) => {
                    errors.push(format!("{name}: items[{i}].value: {m}"));
                    continue;
                }
            };
            let expires = match &it.expires {
                None => None,
                Some(s) => match argus_event::time::parse_datetime(s) {
                    Some(t) => Some(t),
                    None => {
                        errors.push(format!(
                            "{name}: items[{i}].expires: `{s}` is not an RFC 3339 time"
                        ));
                        continue;
                    }
                },
            };
            items.insert(
                value,
                ListItem {
                    reason: it.reason.clone(),
                    expires,
                },
            );
        }
        lists.lists.push(ValueList {
            name: lf.list.name,
            kind,
            entity: lf.list.entity,
            items,
        });
    }
    let lists = Arc::new(lists);

    let mut by_checkpoint: BTreeMap<u16, Vec<(String, RuleConfig, String)>> = BTreeMap::new();
    let mut thresholds: HashMap<u16, Thresholds> = HashMap::new();
    let mut versions = Vec::new();
    let mut tests = Vec::new();
    for (name, text) in policy_files {
        let name = name.clone();
        fingerprint.push_str(text);
        files.push(PathBuf::from(&name));
        let pf: PolicyFile = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                errors.toml(&name, text, &e);
                continue;
            }
        };
        let Some(ty) = schema
            .type_id(&pf.policy.checkpoint)
            .filter(|&t| !schema.get(t).internal)
        else {
            errors.push(format!(
                "{name}: policy.checkpoint: unknown event type `{}`{}",
                pf.policy.checkpoint,
                argus_event::schema::did_you_mean(
                    &pf.policy.checkpoint,
                    schema.public_type_names().into_iter()
                )
            ));
            continue;
        };
        if let Some(v) = pf.policy.version {
            versions.push(v);
        }
        let t = &pf.policy.thresholds;
        let has_thresholds = t.challenge.is_some() || t.review.is_some() || t.block.is_some();
        if has_thresholds
            && thresholds
                .insert(
                    ty,
                    Thresholds {
                        challenge: t.challenge,
                        review: t.review,
                        block: t.block,
                    },
                )
                .is_some()
        {
            errors.push(format!(
                "{name}: policy.thresholds: thresholds for `{}` are already set by another file",
                pf.policy.checkpoint
            ));
        }
        for r in pf.rules {
            by_checkpoint.entry(ty).or_default().push((
                name.clone(),
                r,
                pf.policy.checkpoint.clone(),
            ));
        }
        for t in pf.tests {
            let conv = |v: &toml::Value| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
            let expect_action = match t.expect_action.as_deref().map(|a| (a, Action::parse(a))) {
                Some((a, None)) => {
                    errors.push(format!("{name}: test `{}`: expect_action `{a}` is not allow, challenge, review or block", t.name));
                    None
                }
                Some((_, a)) => a,
                None => None,
            };
            tests.push(PolicyTest {
                file: name.clone(),
                name: t.name,
                prior: t.prior.iter().map(conv).collect(),
                event: conv(&t.event),
                expect_action,
                expect_rules: t.expect_rules,
                expect_not_rules: t.expect_not_rules,
            });
        }
    }

    let mut set = PolicySet {
        by_type: (0..schema.types.len()).map(|_| None).collect(),
        lists: lists.clone(),
        version: String::new(),
        rollout: None,
        overrides: Default::default(),
    };
    let mut names: HashMap<String, String> = HashMap::new();
    for (ty, rules) in by_checkpoint {
        let (env, sources) = checkpoint_env(schema, features, ty, &lists);
        let mut compiled = Vec::new();
        let mut blocked_unconditionally: Option<String> = None;
        for (file, r, checkpoint) in rules {
            let origin = format!("{file}: rule `{}`", r.name);
            if let Some(prev) = names.insert(r.name.clone(), file.clone()) {
                errors.push(format!(
                    "{origin}: a rule named `{}` already exists in {prev}",
                    r.name
                ));
            }
            if r.score.unsigned_abs() > 1_000_000 {
                errors.push(format!(
                    "{origin}: score {} is outside -1,000,000..=1,000,000",
                    r.score
                ));
            }
            let action = Action::parse(&r.action);
            if action.is_none() {
                errors.push(format!(
                    "{origin}: action `{}` is not allow, challenge, review or block",
                    r.action
                ));
            }
            let shadow = match r.mode.as_str() {
                "enforce" => false,
                "shadow" => true,
                m => {
                    errors.push(format!("{origin}: mode `{m}` is not enforce or shadow"));
                    false
                }
            };
            let when_span = r.when.span();
            let when = r.when.into_inner();
            let program = match argus_rules::compile_condition(&when, &env) {
                Ok(p) => p,
                Err(ds) => {
                    for mut d in ds {
                        // A feature that exists but is never computed for this checkpoint.
                        if d.code == "unknown_name" {
                            if let Some(f) = d
                                .message
                                .strip_prefix("unknown name `features.")
                                .and_then(|m| m.strip_suffix('`'))
                            {
                                if features.index_of(f).is_some() {
                                    d.hint = Some(format!("feature `{f}` is never computed for `{checkpoint}`: its key fields are not on this event type"));
                                }
                            }
                        }
                        let text = texts.get(file.as_str()).copied().unwrap_or("");
                        let at = value_start(text, &when_span, &when);
                        let (start, end) = match at {
                            Some(a) => (a + d.span.start as usize, a + d.span.end as usize),
                            None => (when_span.start, when_span.end),
                        };
                        let (line, column) = line_col(text, start);
                        errors.0.push(Problem {
                            file: file.clone(),
                            rule: Some(r.name.clone()),
                            code: d.code.to_string(),
                            message: d.message.clone(),
                            hint: d.hint.clone(),
                            start: Some(start),
                            end: Some(end.max(start)),
                            line: Some(line),
                            column: Some(column),
                            length: text.get(start..end.max(start)).map(|t| t.chars().count()),
                            rendered: d.render(&when, &origin),
                        });
                    }
                    continue;
                }
            };
            if program.constant == Some(argus_rules::Val::Bool(false)) {
                errors.push(format!("{origin}: error[unreachable]: the condition is always false, so the rule can never fire"));
            }
            if let Some(prev) = &blocked_unconditionally {
                // Allow rules still win after an unconditional block; shadow rules change nothing anyway.
                if !shadow && action != Some(Action::Allow) {
                    errors.push(format!("{origin}: error[unreachable]: rule `{prev}` before it always blocks, so this rule cannot change a decision"));
                }
            }
            if !shadow
                && action == Some(Action::Block)
                && program.constant == Some(argus_rules::Val::Bool(true))
            {
                blocked_unconditionally = Some(r.name.clone());
            }
            compiled.push(Rule {
                name: r.name,
                program,
                action: action.unwrap_or_default(),
                score: r.score,
                reason: r.reason,
                tags: r.tags,
                shadow,
                source: when,
            });
        }
        let mut used: Vec<usize> = compiled
            .iter()
            .flat_map(|r| r.program.reads.iter().copied())
            .collect();
        used.sort_unstable();
        used.dedup();
        set.by_type[ty as usize] = Some(Policy {
            checkpoint: schema.get(ty).name.clone(),
            rules: compiled,
            thresholds: thresholds.remove(&ty).unwrap_or_default(),
            env,
            sources,
            used,
        });
    }
    if !errors.is_empty() {
        return Err(errors.0);
    }
    versions.sort();
    versions.dedup();
    let declared = if versions.is_empty() {
        "unversioned".to_string()
    } else {
        versions.join(",")
    };
    set.version = format!(
        "{declared}+{:012x}",
        fnv(fingerprint.as_bytes()) & 0xffff_ffff_ffff
    );
    Ok(Loaded {
        policies: set,
        tests,
        files,
        sources,
    })
}

fn file_name(p: &str) -> &str {
    p.rsplit(['/', '\\']).next().unwrap_or(p)
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h = (h ^ x as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}
