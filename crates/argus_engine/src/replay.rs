//! Replay: recorded events (NDJSON or mapped CSV) through the same [`Engine::process`] path as live traffic.

use crate::engine::{Engine, ProcessError};
use crate::table::RowSink;
use argus_event::{Event, Rejection, TypeId};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Write};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

/// What a replay did with its input.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayStats {
    pub records: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub too_late: u64,
    /// Rejected records by error code.
    pub rejected: BTreeMap<String, u64>,
    pub labels_released: u64,
    pub labels_pending: u64,
    /// Decisions, when the engine has policies.
    pub policy: Option<crate::report::PolicyReport>,
}

impl ReplayStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Errors that stop a replay (I/O); bad records never do.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Mapping(String),
}

struct Outputs<'a, 'b> {
    sinks: &'a mut [&'b mut dyn RowSink],
    rejects: Option<&'a mut (dyn Write + 'b)>,
}

/// Replays `input` through `engine`, writing one row per accepted event to every sink and one JSON line
/// per refused record to `rejects`. `progress` is called every 65,536 records.
pub fn replay<'a, 'b, R: BufRead>(
    engine: &mut Engine,
    input: R,
    format: Format,
    sinks: &'a mut [&'b mut dyn RowSink],
    rejects: Option<&'a mut (dyn Write + 'b)>,
    progress: &mut dyn FnMut(&ReplayStats),
) -> Result<ReplayStats, ReplayError> {
    let mut stats = ReplayStats::default();
    let released_before = engine.counters.labels_released;
    if engine.policies().is_some() {
        stats.policy = Some(crate::report::PolicyReport::default());
    }
    let mut out = Outputs { sinks, rejects };
    match format {
        Format::Ndjson => ndjson(engine, input, &mut stats, &mut out, progress)?,
        Format::Csv => csv_records(engine, input, &mut stats, &mut out, progress)?,
    }
    for s in out.sinks.iter_mut() {
        s.finish()?;
    }
    stats.labels_released = engine.counters.labels_released - released_before;
    if let Some(r) = stats.policy.as_mut() {
        r.finish();
    }
    stats.labels_pending = engine.pending_labels() as u64;
    Ok(stats)
}

fn handle(
    engine: &mut Engine,
    decoded: Result<Event, Rejection>,
    line: u64,
    stats: &mut ReplayStats,
    out: &mut Outputs<'_, '_>,
) -> io::Result<()> {
    stats.records += 1;
    let ev = match decoded {
        Ok(ev) => ev,
        Err(r) => {
            *stats.rejected.entry(r.code().to_string()).or_default() += 1;
            if let Some(w) = out.rejects.as_deref_mut() {
                serde_json::to_writer(
                    &mut *w,
                    &serde_json::json!({"record": line, "errors": r.errors}),
                )?;
                w.write_all(b"\n")?;
            }
            return Ok(());
        }
    };
    // Ground truth for the report and training tables: the event's own label column.
    let label = label_of(engine, &ev);
    let truth = label.map(|v| v != 0.0);
    let amount_slot = engine.schema().get(ev.ty).slot("amount");
    match engine.process(&ev) {
        Ok(p) => {
            if !p.findings.is_empty() {
                for s in out.sinks.iter_mut() {
                    s.findings(&p.findings)?;
                }
            }
            stats.accepted += 1;
            for s in out.sinks.iter_mut() {
                s.write(&ev.id, ev.ty, ev.time, p.features)?;
                s.labelled(p.event, label, p.features)?;
            }
            if let Some(d) = &p.decision {
                let amount = amount_slot
                    .and_then(|s| ev.fields[s].as_f64())
                    .unwrap_or(0.0);
                if let Some(r) = stats.policy.as_mut() {
                    r.add(d, truth, amount);
                }
                for s in out.sinks.iter_mut() {
                    s.decision(d)?;
                }
            }
        }
        Err(e) => {
            match e {
                ProcessError::Duplicate(_) => stats.duplicates += 1,
                ProcessError::TooLate { .. } => stats.too_late += 1,
            }
            if let Some(w) = out.rejects.as_deref_mut() {
                serde_json::to_writer(
                    &mut *w,
                    &serde_json::json!({"record": line, "errors": [{"path": "", "code": e.code(), "message": e.to_string()}]}),
                )?;
                w.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

/// The event's label (first declared label column with a value) as a number; non-zero / true is positive.
fn label_of(engine: &Engine, ev: &Event) -> Option<f64> {
    engine
        .schema()
        .labels
        .iter()
        .filter(|l| l.source_type == ev.ty)
        .find_map(|l| match &ev.fields[l.source_slot] {
            argus_event::Value::Null => None,
            v => Some(v.as_f64().unwrap_or(0.0)),
        })
}

fn ndjson<R: BufRead>(
    engine: &mut Engine,
    mut input: R,
    stats: &mut ReplayStats,
    out: &mut Outputs<'_, '_>,
    progress: &mut dyn FnMut(&ReplayStats),
) -> Result<(), ReplayError> {
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let decoded = engine.decoder().decode_bytes(&line);
        handle(engine, decoded, n, stats, out)?;
        if n.is_multiple_of(65_536) {
            progress(stats);
        }
    }
    Ok(())
}

struct TypeMap {
    ty: TypeId,
    /// (slot, column index, column name)
    cols: Vec<(usize, usize, String)>,
}

fn csv_records<R: BufRead>(
    engine: &mut Engine,
    input: R,
    stats: &mut ReplayStats,
    out: &mut Outputs<'_, '_>,
    progress: &mut dyn FnMut(&ReplayStats),
) -> Result<(), ReplayError> {
    let Some(m) = engine.config.csv.clone() else {
        return Err(ReplayError::Mapping(
            "CSV input needs a [csv] column mapping in the configuration".into(),
        ));
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(m.delimiter as u8)
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let headers: Vec<String> = rdr.headers()?.iter().map(str::to_string).collect();
    let col = |name: &str| -> Result<usize, ReplayError> {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            ReplayError::Mapping(format!(
                "CSV has no column `{name}` (columns: {})",
                headers.join(", ")
            ))
        })
    };
    let id_c = col(&m.id)?;
    let time_c = col(&m.time)?;
    let actor_c = col(&m.actor)?;
    let type_c = m.type_column.as_deref().map(col).transpose()?;
    let mut field_cols = Vec::new();
    for (f, c) in &m.fields {
        field_cols.push((f.clone(), col(c)?, c.clone()));
    }
    let schema = engine.schema().clone();
    let build = |ty: TypeId| -> TypeMap {
        let et = schema.get(ty);
        let mut cols = vec![(argus_event::ACTOR_SLOT, actor_c, m.actor.clone())];
        for (f, ci, cname) in &field_cols {
            if let Some(s) = et
                .slot(f)
                .filter(|&s| s != argus_event::ACTOR_SLOT && et.fields[s].derived_from.is_none())
            {
                cols.push((s, *ci, cname.clone()));
            }
        }
        TypeMap { ty, cols }
    };
    let fixed = match &m.event_type {
        Some(t) => Some(build(schema.type_id(t).ok_or_else(|| {
            ReplayError::Mapping(format!("unknown event type `{t}`"))
        })?)),
        None => None,
    };
    let mut by_type: HashMap<String, Result<TypeMap, argus_event::FieldError>> = HashMap::new();
    let mut rec = csv::ByteRecord::new();
    let mut line = 1u64;
    while rdr.read_byte_record(&mut rec)? {
        line += 1;
        let get = |i: usize| rec.get(i).map(std::str::from_utf8);
        let tm: &TypeMap = match (&fixed, type_c) {
            (Some(f), _) => f,
            (None, Some(tc)) => {
                let name = match get(tc) {
                    Some(Ok(s)) => s,
                    _ => "",
                };
                if !by_type.contains_key(name) {
                    let v = engine.decoder().type_for(name).map(&build);
                    by_type.insert(name.to_string(), v);
                }
                match &by_type[name] {
                    Ok(tm) => tm,
                    Err(e) => {
                        let r = Rejection {
                            errors: vec![e.clone()],
                        };
                        handle(engine, Err(r), line, stats, out)?;
                        continue;
                    }
                }
            }
            (None, None) => {
                unreachable!("the configuration check requires `type` or `type_column`")
            }
        };
        let mut bad = None;
        let mut vals: Vec<(usize, &str, &str)> = Vec::with_capacity(tm.cols.len());
        let text = |i: usize, bad: &mut Option<String>| match get(i) {
            Some(Ok(s)) => s,
            Some(Err(_)) => {
                *bad = Some(headers[i].clone());
                ""
            }
            None => "",
        };
        let id = text(id_c, &mut bad);
        let time = text(time_c, &mut bad);
        for (slot, ci, cname) in &tm.cols {
            vals.push((*slot, cname.as_str(), text(*ci, &mut bad)));
        }
        let decoded = match bad {
            Some(c) => Err(Rejection {
                errors: vec![argus_event::FieldError {
                    path: format!("/{c}"),
                    code: "invalid_utf8",
                    message: "column is not valid UTF-8".into(),
                }],
            }),
            None => engine.decoder().decode_text(tm.ty, id, time, &vals),
        };
        handle(engine, decoded, line, stats, out)?;
        if stats.records.is_multiple_of(65_536) {
            progress(stats);
        }
    }
    Ok(())
}
