//! `argus init --input FILE`: a first configuration drafted from a CSV file's columns, the way
//! DuckDB's `read_csv_auto` sniffs a file. It reads a sample of rows, infers each column's type, picks
//! the time column and its format, the id, the actor, a label, an amount and the other entity keys,
//! writes a configuration (an event type, the `[csv]` mapping and a few standard velocity features),
//! says what it inferred and why, and checks that the draft loads. The user edits a draft instead of a
//! blank page.

use anyhow::{bail, Context};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A CSV file with a header row, or NDJSON Argus events (`.ndjson`, `.jsonl`); optionally `.gz`.
    #[arg(long, short)]
    input: PathBuf,
    /// Write the configuration here (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Rows sampled to infer the columns.
    #[arg(long, default_value_t = 10_000)]
    sample: usize,
    /// Field delimiter (one ASCII character).
    #[arg(long, default_value_t = ',')]
    delimiter: char,
    /// Replace `--out` if it exists (by default an existing file, perhaps edited by hand, is kept).
    #[arg(long)]
    force: bool,
}

/// Words in the name of a column that holds an outcome (a label candidate when it has two values).
const OUTCOME_WORDS: &[&str] = &[
    "fraud",
    "label",
    "target",
    "class",
    "chargeback",
    "dispute",
    "bad",
    "scam",
    "abuse",
    "banned",
    "converted",
    "outcome",
];

/// Time formats tried, in order, on a column whose values are not RFC 3339 or epoch milliseconds.
const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d",
    "%m/%d/%Y",
];

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Empty,
    Int,
    Float,
    /// RFC 3339 or epoch milliseconds: no format needed.
    Time,
    /// Times in this strptime format.
    TimeFormat(&'static str),
    Text,
}

struct Column {
    name: String,
    kind: Kind,
    values: usize,
    distinct: usize,
    /// The values seen are exactly {0, 1} (or {false, true}).
    binary: bool,
}

fn parses_as_format(v: &str, f: &str) -> bool {
    jiff::fmt::strtime::parse(f, v.trim()).is_ok_and(|tm| {
        tm.to_datetime().is_ok() || tm.to_date().is_ok() || tm.to_timestamp().is_ok()
    })
}

fn infer(name: &str, values: &[&str]) -> Column {
    let present: Vec<&str> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    let distinct: HashSet<&str> = present.iter().copied().collect();
    let all = |p: &dyn Fn(&str) -> bool| !present.is_empty() && present.iter().all(|v| p(v));
    let kind = if present.is_empty() {
        Kind::Empty
    } else if all(&|v| v.parse::<i64>().is_ok()) {
        Kind::Int
    } else if all(&|v| v.parse::<f64>().is_ok_and(f64::is_finite)) {
        Kind::Float
    } else if all(&|v| argus_event::time::parse_datetime(v).is_some()) {
        Kind::Time
    } else if let Some(f) = TIME_FORMATS
        .iter()
        .find(|f| all(&|v| parses_as_format(v, f)))
    {
        Kind::TimeFormat(f)
    } else {
        Kind::Text
    };
    let binary = distinct.len() == 2
        && (distinct.iter().all(|v| *v == "0" || *v == "1")
            || distinct
                .iter()
                .all(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")));
    Column {
        name: name.to_string(),
        kind,
        values: present.len(),
        distinct: distinct.len(),
        binary,
    }
}

/// A configuration name from a column name: snake_case, ASCII.
fn snake(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let out = out.trim_matches('_').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => out,
        _ => format!("c_{out}"),
    }
}

fn has(name: &str, words: &[&str]) -> bool {
    let n = name.to_ascii_lowercase();
    words.iter().any(|w| n.contains(w))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if let Some(p) = a.out.as_ref().filter(|p| p.exists() && !a.force) {
        bail!("{} exists; pass --force to replace it", p.display());
    }
    let f =
        std::fs::File::open(&a.input).with_context(|| format!("opening {}", a.input.display()))?;
    let r: Box<dyn BufRead> = if a.input.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    if !a.delimiter.is_ascii() {
        bail!("--delimiter must be one ASCII character");
    }
    let name = a.input.to_string_lossy();
    let name = name.trim_end_matches(".gz");
    if name.ends_with(".ndjson") || name.ends_with(".jsonl") {
        let (t, why) = draft_ndjson(&a, r)?;
        return finish(&a, t, why);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(a.delimiter as u8)
        .flexible(true)
        .from_reader(r);
    let headers: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for rec in rdr.records().take(a.sample) {
        rows.push(rec?);
    }
    if rows.is_empty() {
        bail!(
            "{} has a header but no rows to learn from",
            a.input.display()
        );
    }
    let cols: Vec<Column> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let vals: Vec<&str> = rows.iter().map(|r| r.get(i).unwrap_or("")).collect();
            infer(h, &vals)
        })
        .collect();
    let n = rows.len();
    let mut why: Vec<String> = vec![format!(
        "read {n} rows of {} ({} columns)",
        a.input.display(),
        cols.len()
    )];
    let is_time = |c: &Column| matches!(c.kind, Kind::Time | Kind::TimeFormat(_));
    // Time: a time column, preferring one named like a time.
    let times: Vec<&Column> = cols.iter().filter(|c| is_time(c)).collect();
    let time = times
        .iter()
        .find(|c| has(&c.name, &["time", "date", "ts", "timestamp"]))
        .or(times.first())
        .copied();
    let Some(time) = time else {
        let other = [';', '\t', '|']
            .into_iter()
            .find(|d| *d != a.delimiter && headers.len() == 1 && headers[0].contains(*d));
        if let Some(d) = other {
            bail!(
                "the header is one column containing `{}`: pass --delimiter {:?}",
                d.escape_default(),
                d.to_string()
            );
        }
        bail!("no column holds times in a format Argus knows (RFC 3339, epoch milliseconds, or one of {}); set [csv] time and time_format by hand (epoch seconds: time_format = \"%s\")", TIME_FORMATS.join(", "));
    };
    let time_format = match &time.kind {
        Kind::TimeFormat(f) => {
            why.push(format!("time: `{}`, every sampled value matches `{f}` (time_format; UTC assumed: set time_zone if not)", time.name));
            if f.starts_with("%m/%d") || f.starts_with("%d/%m") {
                why.push("time: day and month order is a guess when no sampled day is above 12: check it".into());
            }
            Some(*f)
        }
        _ => {
            why.push(format!(
                "time: `{}`, RFC 3339 or epoch milliseconds in every sampled row",
                time.name
            ));
            None
        }
    };
    for t in times.iter().filter(|c| c.name != time.name) {
        why.push(format!(
            "also times: `{}` (a second event per row? see [[csv.events]] in docs/events.md)",
            t.name
        ));
    }
    // Id: unique in every row, named like an id if several.
    let unique: Vec<&Column> = cols
        .iter()
        .filter(|c| c.values == n && c.distinct == n && !is_time(c) && c.kind != Kind::Float)
        .collect();
    let id = unique
        .iter()
        .find(|c| has(&c.name, &["id", "key", "no", "number"]))
        .or(unique.first())
        .copied();
    match id {
        Some(c) => why.push(format!("id: `{}`, unique in all {n} sampled rows", c.name)),
        None => why.push("id: no column is unique; rows get `<file name>:<record number>`".into()),
    }
    // Label: a two-valued column named like an outcome.
    let label = cols
        .iter()
        .find(|c| c.binary && has(&c.name, OUTCOME_WORDS));
    // Actor: repeating values, named like a person or account.
    let keyish = |c: &Column| {
        !is_time(c)
            && c.kind != Kind::Float
            && Some(c.name.as_str()) != id.map(|i| i.name.as_str())
            && Some(c.name.as_str()) != label.map(|l| l.name.as_str())
            && c.distinct > 1
            && c.distinct < c.values
    };
    let actor = cols
        .iter()
        .filter(|c| keyish(c))
        .find(|c| {
            has(
                &c.name,
                &[
                    "user", "customer", "account", "actor", "client", "buyer", "member", "cust",
                ],
            )
        })
        .or_else(|| cols.iter().filter(|c| keyish(c)).max_by_key(|c| c.distinct));
    let Some(actor) = actor else {
        bail!("no column looks like the actor (a user or customer id that repeats); set [csv] actor by hand");
    };
    why.push(format!(
        "actor: `{}`, {} distinct values in {} rows",
        actor.name, actor.distinct, actor.values
    ));
    let amount = cols.iter().find(|c| {
        matches!(c.kind, Kind::Float | Kind::Int)
            && has(&c.name, &["amount", "value", "price", "total", "sum"])
            && !c.binary
            && Some(c.name.as_str()) != id.map(|i| i.name.as_str())
    });
    if let Some(c) = amount {
        why.push(format!("amount: `{}` (numbers)", c.name));
    }
    // Other entity keys: repeating ids named like things a fraud ring shares.
    let keys: Vec<&Column> = cols
        .iter()
        .filter(|c| keyish(c) && c.name != actor.name)
        .filter(|c| {
            has(
                &c.name,
                &[
                    "id", "device", "ip", "terminal", "merchant", "card", "email", "phone",
                    "seller", "shop", "store", "address", "source", "browser", "app", "channel",
                ],
            )
        })
        // Not a handful of categories: at least 10 values (or most rows distinct in a small sample).
        .filter(|c| (c.distinct >= 10 || c.distinct * 2 > c.values) && c.kind != Kind::Float)
        .take(6)
        .collect();
    for k in &keys {
        why.push(format!(
            "entity key: `{}` ({} distinct values)",
            k.name, k.distinct
        ));
    }
    if let Some(l) = label {
        why.push(format!(
            "label: `{}` (two values); declared with positive = 1 and a 7-day delay: set the delay to when the outcome becomes known",
            l.name
        ));
    }
    let skipped: Vec<&str> = cols
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| {
            ![
                Some(time.name.as_str()),
                id.map(|c| c.name.as_str()),
                Some(actor.name.as_str()),
                label.map(|c| c.name.as_str()),
                amount.map(|c| c.name.as_str()),
            ]
            .contains(&Some(n))
                && !keys.iter().any(|k| k.name == *n)
        })
        .collect();
    if !skipped.is_empty() {
        why.push(format!(
            "not mapped: {} (add them to [csv.fields] and the type to use them)",
            skipped
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    // The draft.
    let stem = a
        .input
        .file_name()
        .and_then(|s| s.to_str())
        .map(|s| s.split('.').next().unwrap_or(s))
        .unwrap_or("input");
    let ty = format!("{}.event", snake(stem));
    let mut t = String::new();
    let w = &mut t;
    use std::fmt::Write as _;
    let _ = writeln!(w, "# Drafted by `argus init --input {}` from {n} sampled rows. Edit it: what was inferred and why", a.input.display());
    let _ = writeln!(
        w,
        "# was printed with it. Check it with `argus check --config <this file>`.\n"
    );
    let kinds: Vec<String> = keys
        .iter()
        .map(|k| {
            snake(
                k.name
                    .trim_end_matches("_id")
                    .trim_end_matches("ID")
                    .trim_end_matches("_ID"),
            )
        })
        .collect();
    entities(w, &kinds);
    let _ = writeln!(w, "[[event_types]]\nname = {ty:?}\n[event_types.fields]");
    if amount.is_some() {
        // Money: exact decimals (micro-units), not floats.
        let _ = writeln!(w, "amount = {{ type = \"decimal\" }}");
    }
    for (k, kind) in keys.iter().zip(&kinds) {
        let _ = writeln!(
            w,
            "{} = {{ type = \"id\", entity = {kind:?} }}",
            snake(&k.name)
        );
    }
    if let Some(l) = label {
        let (lt, pos) = if l.kind == Kind::Int {
            ("int", "1")
        } else {
            ("bool", "true")
        };
        let _ = writeln!(w, "{} = {{ type = \"{lt}\", label = {{ name = {:?}, delay = \"7d\", positive = {pos} }} }}", snake(&l.name), snake(&l.name));
    }
    let _ = writeln!(w, "\n[csv]\ntype = {ty:?}");
    if let Some(c) = id {
        let _ = writeln!(w, "id = {:?}", c.name);
    }
    let _ = writeln!(w, "time = {:?}", time.name);
    if let Some(f) = time_format {
        let _ = writeln!(w, "time_format = {f:?}");
    }
    let _ = writeln!(w, "actor = {:?}", actor.name);
    if a.delimiter != ',' {
        let _ = writeln!(w, "delimiter = {:?}", a.delimiter.to_string());
    }
    let _ = writeln!(w, "[csv.fields]");
    if let Some(c) = amount {
        let _ = writeln!(w, "amount = {:?}", c.name);
    }
    for k in &keys {
        let _ = writeln!(w, "{} = {:?}", snake(&k.name), k.name);
    }
    if let Some(l) = label {
        let _ = writeln!(w, "{} = {:?}", snake(&l.name), l.name);
    }
    let _ = writeln!(w, "\n[settings]\nallowed_lateness = \"5m\"   # events more than this behind the newest are refused; unsorted files: argus replay --sort\n");
    let feature = |w: &mut String, name: &str, kind: &str, key: &str, extra: &str| {
        let _ = writeln!(w, "[[features]]\nname = {name:?}\nkind = {kind:?}\nevents = [{ty:?}]\nkey = [{key:?}]\n{extra}");
    };
    let _ = writeln!(w, "# The actor's velocity and history.");
    feature(w, "actor_events_1h", "count", "actor", "window = \"1h\"\n");
    feature(w, "actor_events_1d", "count", "actor", "window = \"1d\"\n");
    if amount.is_some() {
        feature(
            w,
            "actor_amount_1d",
            "sum",
            "actor",
            "value = \"amount\"\nwindow = \"1d\"\n",
        );
        feature(
            w,
            "actor_avg_amount_30d",
            "avg",
            "actor",
            "value = \"amount\"\nwindow = \"30d\"\n",
        );
    }
    feature(w, "actor_since_last", "since_last", "actor", "");
    feature(w, "actor_age", "age", "actor", "");
    for k in &keys {
        let f = snake(&k.name);
        let _ = writeln!(
            w,
            "# Shared `{}`: how busy, and how many actors use it.",
            k.name
        );
        feature(
            w,
            &format!("{f}_events_1d"),
            "count",
            &f,
            "window = \"1d\"\n",
        );
        feature(
            w,
            &format!("{f}_actors_7d"),
            "distinct",
            &f,
            "value = \"actor\"\nwindow = \"7d\"\n",
        );
    }
    finish(&a, t, why)
}

/// Checks that the draft loads (a failure is a bug of this command, reported as such), writes it,
/// and says what was inferred and why.
fn finish(a: &Args, t: String, why: Vec<String>) -> anyhow::Result<()> {
    let dir = a
        .out
        .as_ref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if let Err(e) = argus_engine::Config::from_str(&t, &dir) {
        bail!("the drafted configuration does not load (please report this):\n{e}\n\n{t}");
    }
    match &a.out {
        Some(p) => std::fs::write(p, &t).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().lock().write_all(t.as_bytes())?,
    }
    let mut e = std::io::stderr().lock();
    for l in &why {
        writeln!(e, "argus init: {l}")?;
    }
    Ok(())
}

/// A field's values in the sampled events, as text (JSON scalars; objects and arrays are skipped),
/// and which JSON kinds they had: the decoder is strict about them (a string of digits is not an
/// integer, a 0/1 number is not a boolean).
#[derive(Default)]
struct Seen {
    values: Vec<String>,
    strings: usize,
    numbers: usize,
    bools: usize,
}

/// Whether `name` has `word` as one of its `_`-separated parts (`card_id` has `id`; `paid` has not).
fn has_word(name: &str, words: &[&str]) -> bool {
    let n = name.to_ascii_lowercase();
    n.split('_').any(|part| words.contains(&part))
}

/// The draft for NDJSON Argus events: per event type, the `data` fields the schema lacks (typed from
/// the sampled values), a label, entity keys, and standard features.
fn draft_ndjson(a: &Args, r: Box<dyn BufRead>) -> anyhow::Result<(String, Vec<String>)> {
    use serde_json::Value as J;
    use std::collections::BTreeMap;
    let schema = argus_event::Schema::builtin();
    // Per type: events sampled, and per data field its values.
    let mut types: BTreeMap<String, (usize, BTreeMap<String, Seen>)> = BTreeMap::new();
    let mut n = 0;
    for (i, line) in r.lines().enumerate() {
        if n >= a.sample {
            break;
        }
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: J = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", a.input.display(), i + 1))?;
        let (Some(ty), Some(_)) = (v.get("type").and_then(J::as_str), v.get("time")) else {
            bail!(
                "{} line {}: not an Argus event (an object with `id`, `type`, `time`, `actor` and `data`); for a table of records, give argus init a CSV file",
                a.input.display(),
                i + 1
            );
        };
        n += 1;
        let e = types.entry(ty.to_string()).or_default();
        e.0 += 1;
        if let Some(data) = v.get("data").and_then(J::as_object) {
            for (k, x) in data {
                let seen = e.1.entry(k.clone()).or_default();
                let text = match x {
                    J::String(s) => {
                        seen.strings += 1;
                        s.clone()
                    }
                    J::Number(n) => {
                        seen.numbers += 1;
                        n.to_string()
                    }
                    J::Bool(b) => {
                        seen.bools += 1;
                        b.to_string()
                    }
                    _ => continue,
                };
                seen.values.push(text);
            }
        }
    }
    if n == 0 {
        bail!("{} holds no events to learn from", a.input.display());
    }
    let mut why = vec![format!(
        "read {n} events of {} ({} types: {})",
        a.input.display(),
        types.len(),
        types.keys().cloned().collect::<Vec<_>>().join(", ")
    )];
    use std::fmt::Write as _;
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(w, "# Drafted by `argus init --input {}` from {n} sampled events. Edit it: what was inferred and why", a.input.display());
    let _ = writeln!(
        w,
        "# was printed with it. Check it with `argus check --config <this file>`.\n"
    );
    let mut kinds: Vec<String> = Vec::new();
    let mut decls = String::new();
    let mut features = String::new();
    let mut labels: Vec<String> = Vec::new();
    for (ty, (count, fields)) in &types {
        let known = schema.by_name(ty);
        if known.is_none()
            && !ty
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        {
            bail!(
                "event type `{ty}`: type names are lower-case letters, digits, `_` and `.` (e.g. `{}`); rename it in the events",
                snake(&ty.replace('.', "_"))
            );
        }
        let mut added: Vec<String> = Vec::new();
        let mut label = None;
        let mut amount: Option<String> = None;
        let mut keys: Vec<String> = Vec::new();
        for (k, seen) in fields {
            let vals: Vec<&str> = seen.values.iter().map(String::as_str).collect();
            let c = infer(k, &vals);
            let field = snake(k);
            if let Some(f) = known.and_then(|et| et.field(k)) {
                // Declared by the schema already: keep its type; use it for features.
                if f.entity.is_some() && f.name != "actor" {
                    keys.push(f.name.clone());
                }
                if f.ty == argus_event::schema::FieldType::Decimal
                    && has(k, &["amount", "value", "price", "total"])
                    && amount.is_none()
                {
                    amount = Some(f.name.clone());
                }
                continue;
            }
            if field != *k {
                why.push(format!("{ty}: `{k}` is not a field name Argus accepts; rename it (e.g. `{field}`) in the events"));
                continue;
            }
            let kinds_seen = [seen.strings, seen.numbers, seen.bools]
                .iter()
                .filter(|&&n| n > 0)
                .count();
            if kinds_seen > 1 {
                why.push(format!("{ty}: `{k}` holds JSON strings, numbers or booleans mixed; not declared (declare it by hand)"));
                continue;
            }
            let outcome = has(k, OUTCOME_WORDS);
            let is_bool = seen.bools > 0;
            let is_number = seen.numbers > 0;
            let decl = if c.binary && label.is_none() && outcome && (is_bool || c.kind == Kind::Int)
            {
                let (lt, pos) = if is_bool {
                    ("bool", "true")
                } else {
                    ("int", "1")
                };
                let mut name = k.clone();
                if labels.contains(&name) {
                    name = format!("{}_{k}", snake(&ty.replace('.', "_")));
                }
                labels.push(name.clone());
                label = Some(name.clone());
                why.push(format!("{ty}: label `{k}` (two values); declared with positive = {pos} and a 7-day delay: set the delay to when the outcome becomes known"));
                format!("{{ type = \"{lt}\", label = {{ name = {name:?}, delay = \"7d\", positive = {pos} }} }}")
            } else if is_bool {
                "{ type = \"bool\" }".to_string()
            } else if c.kind == Kind::Empty {
                continue;
            } else if matches!(c.kind, Kind::Int | Kind::Float)
                && has(k, &["amount", "value", "price", "total", "sum"])
            {
                // Money: exact decimals (numbers or strings of digits both decode).
                if amount.is_none() {
                    amount = Some(k.clone());
                }
                "{ type = \"decimal\" }".to_string()
            } else if is_number {
                match c.kind {
                    Kind::Int => "{ type = \"int\" }".to_string(),
                    _ => "{ type = \"float\" }".to_string(),
                }
            } else if c.kind == Kind::Time {
                "{ type = \"timestamp\" }".to_string()
            } else {
                // JSON strings (digits included: `"10234"` is an id, not an integer).
                let repeating = c.distinct > 1 && c.distinct * 2 <= c.values;
                let key_like = has_word(k, &["id", "ip", "app", "key"])
                    || has(
                        k,
                        &[
                            "device", "terminal", "merchant", "card", "seller", "shop", "store",
                            "source", "browser", "channel",
                        ],
                    );
                if repeating && key_like {
                    let kind = snake(k.trim_end_matches("_id"));
                    if !kinds.contains(&kind) {
                        kinds.push(kind.clone());
                    }
                    keys.push(k.clone());
                    why.push(format!(
                        "{ty}: entity key `{k}` ({} distinct values in {} events)",
                        c.distinct, c.values
                    ));
                    format!("{{ type = \"id\", entity = {kind:?} }}")
                } else {
                    "{ type = \"string\" }".to_string()
                }
            };
            added.push(format!("{k} = {decl}"));
        }
        if known.is_none() || !added.is_empty() {
            let _ = writeln!(
                decls,
                "[[event_types]]\nname = {ty:?}\n[event_types.fields]"
            );
            for f in &added {
                let _ = writeln!(decls, "{f}");
            }
            let _ = writeln!(decls);
            why.push(format!(
                "{ty}: {} ({count} events): {} field{} declared",
                if known.is_some() {
                    "built-in type"
                } else {
                    "new type"
                },
                added.len(),
                if added.len() == 1 { "" } else { "s" }
            ));
        } else {
            why.push(format!(
                "{ty}: built-in type ({count} events), every field known"
            ));
        }
        let stem = snake(&ty.replace('.', "_"));
        let feature = |w: &mut String, name: &str, kind: &str, key: &str, extra: &str| {
            let _ = writeln!(w, "[[features]]\nname = {name:?}\nkind = {kind:?}\nevents = [{ty:?}]\nkey = [{key:?}]\n{extra}");
        };
        let _ = writeln!(
            features,
            "# `{ty}`: the actor's velocity and history, and its shared keys."
        );
        feature(
            &mut features,
            &format!("actor_{stem}_1h"),
            "count",
            "actor",
            "window = \"1h\"\n",
        );
        feature(
            &mut features,
            &format!("actor_{stem}_1d"),
            "count",
            "actor",
            "window = \"1d\"\n",
        );
        if let Some(am) = &amount {
            feature(
                &mut features,
                &format!("actor_{stem}_{am}_1d"),
                "sum",
                "actor",
                &format!("value = {am:?}\nwindow = \"1d\"\n"),
            );
        }
        feature(
            &mut features,
            &format!("actor_{stem}_since_last"),
            "since_last",
            "actor",
            "",
        );
        for k in &keys {
            feature(
                &mut features,
                &format!("{k}_{stem}_1d"),
                "count",
                k,
                "window = \"1d\"\n",
            );
            feature(
                &mut features,
                &format!("{k}_{stem}_actors_7d"),
                "distinct",
                k,
                "value = \"actor\"\nwindow = \"7d\"\n",
            );
        }
    }
    entities(w, &kinds);
    w.push_str(&decls);
    let _ = writeln!(w, "[settings]\nallowed_lateness = \"5m\"   # events more than this behind the newest are refused; unsorted files: argus replay --sort\n");
    w.push_str(&features);
    Ok((t, why))
}

/// The `[entities]` section declaring `kinds` (nothing when there are none).
fn entities(w: &mut String, kinds: &[String]) {
    use std::fmt::Write as _;
    if !kinds.is_empty() {
        let _ = writeln!(
            w,
            "[entities]\nkinds = [{}]\n",
            kinds
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
